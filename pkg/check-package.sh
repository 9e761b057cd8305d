#!/usr/bin/env bash
# Checks a natter .deb the way an operator meets it: lintian, `dpkg -i`, the
# installed files, man page and units, the installed binary started with the
# installed /etc/default/natter and two clients chatting through it, then
# `dpkg -r` and `dpkg -P`, each checked for what it leaves behind.
#
#   sudo pkg/check-package.sh target/debian/natter_0.1.0-1_amd64.deb
#
# Needs root, dpkg, lintian and man-db, and a machine where natter is not
# installed: the package is purged again at the end, whatever happens.
# systemd need not run (CI has none); where systemd-analyze exists, the
# installed units are verified with it.
set -euo pipefail

deb=$(realpath "$1")
src=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
natter_pid=
fail() {
    echo "check-package: FAIL: $*" >&2
    exit 1
}
step() { echo "--- $*"; }

[ "$(id -u)" = 0 ] || fail "run as root (dpkg -i and -r)"
# dpkg's status of natter: "ii " installed, "rc " removed with its conffiles
# kept, nothing (or "un ") unknown.
status() { dpkg-query -W -f='${db:Status-Abbrev}' natter 2>/dev/null || true; }
case "$(status)" in
"" | ?n*) ;;
*) fail "natter is known to dpkg here ($(status)); this script installs and purges it" ;;
esac
cleanup() {
    if [ -n "$natter_pid" ]; then kill -KILL "$natter_pid" 2>/dev/null || true; fi
    exec 3>&- 4>&- 5>&-
    case "$(status)" in
    "" | ?n*) ;;
    *) dpkg -P natter >/dev/null 2>&1 || true ;;
    esac
    rm -rf "$work"
}
trap cleanup EXIT

# Every path under the directories a package may touch, except dpkg's and
# apt's own records, logs and caches (man-db's index), which dpkg -L and
# dpkg-query cover.
snapshot() {
    find /etc /usr /var /opt /srv -xdev \
        \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/log \
        -o -path /var/cache -o -path /var/tmp -o -path "$src" \) -prune \
        -o -print 2>/dev/null | LC_ALL=C sort
}

step "the package"
dpkg-deb --info "$deb"
dpkg-deb --contents "$deb"
version=$(dpkg-deb --field "$deb" Version)
echo "package size: $(stat -c %s "$deb") bytes;" \
    "installed size: $(dpkg-deb --field "$deb" Installed-Size) KiB"

step "lintian"
# Errors and warnings fail; info tags are shown too. Every tag that is not
# fixed is overridden in pkg/natter.lintian-overrides with its reason; the
# first run shows them (and fails on them, being shown), the second judges.
# As root, lintian also says that running as root is not recommended.
quiet_root() { grep -v 'running with root privileges' >&2 || true; }
lintian --display-info --show-overrides "$deb" 2> >(quiet_root) || true
lintian --fail-on error,warning --display-info "$deb" 2> >(quiet_root) ||
    fail "lintian found errors or warnings"

snapshot >"$work/before"

step "dpkg -i"
dpkg -i "$deb"
dpkg -L natter
[ "$(status)" = "ii " ] || fail "not installed: $(status)"
dpkg --verify natter || fail "dpkg --verify"
dpkg-query -W -f='${Conffiles}\n' natter | grep -q '^ /etc/default/natter ' ||
    fail "/etc/default/natter is not a conffile"

step "the installed files"
[ "$(/usr/bin/natter --version)" = "natter ${version%-*}" ] ||
    fail "natter --version says '$(/usr/bin/natter --version)', the package is $version"
/usr/bin/natter --version
[ "$(man -w natter)" = /usr/share/man/man8/natter.8.gz ] || fail "man -w natter: $(man -w natter)"
MANWIDTH=80 man --warnings natter >"$work/man.txt" 2>"$work/man.err"
[ ! -s "$work/man.err" ] || fail "man natter warns: $(cat "$work/man.err")"
for section in NAME SYNOPSIS OPTIONS COMMANDS SIGNALS 'EXIT STATUS' FILES EXAMPLES; do
    grep -q "^$section" "$work/man.txt" || fail "man natter has no $section section"
done
echo "man natter: $(wc -l <"$work/man.txt") lines, no warnings"
for unit in natter.service natter.socket; do
    cmp "/usr/lib/systemd/system/$unit" "$src/pkg/$unit" ||
        fail "the installed $unit is not pkg/$unit"
done
cmp /etc/default/natter "$src/pkg/natter.default" || fail "/etc/default/natter is not pkg/natter.default"
# Installing enables and starts nothing.
if find /etc/systemd -name 'natter.*' | grep -q .; then
    fail "installing enabled something: $(find /etc/systemd -name 'natter.*')"
fi
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify /usr/lib/systemd/system/natter.service /usr/lib/systemd/system/natter.socket ||
        fail "systemd-analyze verify"
    echo "systemd-analyze verify: no complaint"
    # docs/operations.md says the service rates 1.2 ("OK"); --threshold is
    # ten times the exposure level.
    systemd-analyze security --offline=yes --threshold=12 /usr/lib/systemd/system/natter.service \
        >"$work/security" 2>&1 || fail "systemd-analyze security: $(tail -1 "$work/security")"
    tail -1 "$work/security"
else
    echo "systemd-analyze is not installed: units not verified"
fi

step "the installed natter, with the installed /etc/default/natter"
# The file is one `NATTER_OPTS="..."` assignment that the shell and systemd's
# EnvironmentFile= read alike (tests/package.rs keeps it so).
# shellcheck disable=SC1091 # the installed file, not one in this tree
opts=$(set -a && . /etc/default/natter && printf '%s' "${NATTER_OPTS:?}")
echo "NATTER_OPTS=$opts"
# Later flags win: the same options, on loopback ports picked by the kernel.
# Run it unprivileged, as the service's DynamicUser would.
run=()
if command -v setpriv >/dev/null 2>&1; then
    run=(setpriv --reuid=nobody --regid=nogroup --clear-groups --no-new-privs)
fi
# shellcheck disable=SC2086 # split NATTER_OPTS at whitespace, as systemd does
"${run[@]}" /usr/bin/natter $opts --listen 127.0.0.1:0 --metrics 127.0.0.1:0 2>"$work/log" &
natter_pid=$!
for _ in $(seq 100); do
    grep -q 'listening on' "$work/log" && break
    kill -0 "$natter_pid" 2>/dev/null || fail "natter exited: $(cat "$work/log")"
    sleep 0.1
done
cat "$work/log"
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$work/log")
metrics=$(sed -n 's|.*metrics on http://127\.0\.0\.1:\([0-9]*\)/metrics.*|\1|p' "$work/log")
if [ -z "$port" ] || [ -z "$metrics" ]; then fail "no listening line: $(cat "$work/log")"; fi

# Two clients, as two people with nc would be.
expect() { # FD LINE: the next line on FD is LINE
    local got
    IFS= read -r -t 5 -u "$1" got || fail "client $1 waited for '$2' and got nothing"
    [ "$got" = "$2" ] || fail "client $1 expected '$2', got '$got'"
    echo "client $1 < $got"
}
say() { # FD LINE
    printf '%s\n' "$2" >&"$1"
    echo "client $1 > $2"
}
exec 3<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 5 -u 3 hello || fail "client 3 got no greeting"
echo "client 3 < $hello"
a=${hello#You are }
exec 4<>"/dev/tcp/127.0.0.1/$port"
IFS= read -r -t 5 -u 4 hello || fail "client 4 got no greeting"
echo "client 4 < $hello"
b=${hello#You are }
expect 3 "$b has arrived"
say 3 "Hi!"
expect 3 "$a: Hi!"
expect 4 "$a: Hi!"
say 4 "/nick bob"
expect 3 "$b is now known as bob"
expect 4 "$b is now known as bob"
say 4 "Hi yourself."
expect 3 "bob: Hi yourself."
expect 4 "bob: Hi yourself."
say 3 "/who"
expect 3 "*** 2 here: $a, bob"

exec 5<>"/dev/tcp/127.0.0.1/$metrics"
printf 'GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&5
timeout 5 cat <&5 >"$work/metrics" || true
exec 5>&-
grep -q '^natter_clients 2$' "$work/metrics" || fail "metrics: $(cat "$work/metrics")"
echo "metrics: natter_clients 2"

say 4 "/quit"
expect 3 "bob has left"
exec 4>&-
kill -TERM "$natter_pid"
expect 3 "*** server shutting down"
code=0
wait "$natter_pid" || code=$?
natter_pid=
exec 3>&-
[ "$code" = 0 ] || fail "natter exited $code after SIGTERM: $(cat "$work/log")"
grep -q 'shutdown complete' "$work/log" || fail "no shutdown line: $(cat "$work/log")"
echo "SIGTERM: exit 0, $(grep -o 'shutdown complete.*' "$work/log")"

step "dpkg -r"
dpkg -r natter
[ "$(status)" = "rc " ] || fail "not in the config-files state: $(status)"
snapshot >"$work/removed"
# What Debian keeps after a remove: the conffile, and what deb-systemd-helper
# does for every package with units: it masks them (links to /dev/null, so
# they cannot start while the conffile is around) and keeps its state until
# the purge.
expected="/etc/default/natter
/etc/systemd/system/natter.service
/etc/systemd/system/natter.socket
/var/lib/systemd/deb-systemd-helper-enabled/natter.service.dsh-also
/var/lib/systemd/deb-systemd-helper-enabled/natter.socket.dsh-also
/var/lib/systemd/deb-systemd-helper-masked
/var/lib/systemd/deb-systemd-helper-masked/natter.service
/var/lib/systemd/deb-systemd-helper-masked/natter.socket"
left=$(LC_ALL=C comm -13 "$work/before" "$work/removed")
echo "left after dpkg -r:"
echo "$left"
unexpected=$(LC_ALL=C comm -23 <(echo "$left") <(echo "$expected" | LC_ALL=C sort))
[ -z "$unexpected" ] || fail "dpkg -r left behind: $unexpected"
grep -qx /etc/default/natter <<<"$left" || fail "dpkg -r removed the conffile"
for unit in natter.service natter.socket; do
    if [ -e "/etc/systemd/system/$unit" ] || [ -L "/etc/systemd/system/$unit" ]; then
        [ "$(readlink "/etc/systemd/system/$unit")" = /dev/null ] || fail "$unit left, not a mask"
    fi
done
gone=$(LC_ALL=C comm -23 "$work/before" "$work/removed")
[ -z "$gone" ] || fail "dpkg -r removed what it did not install: $gone"

step "dpkg -P"
dpkg -P natter
case "$(status)" in
"" | ?n*) ;;
*) fail "dpkg still knows natter after the purge: $(status)" ;;
esac
snapshot >"$work/purged"
left=$(LC_ALL=C comm -3 "$work/before" "$work/purged")
[ -z "$left" ] || fail "dpkg -P left the machine different: $left"
echo "nothing left after dpkg -P"

echo "check-package: OK: $(basename "$deb")"
