//! `--cluster redis://[user:password@]HOST:PORT[/DB]`, and the password that
//! must never reach a log.

use std::net::SocketAddr;

/// Where Redis is and how to log in, from `--cluster`.
#[derive(Clone)]
pub struct RedisUrl {
    pub addr: SocketAddr,
    pub db: u32,
    pub user: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisUrl {
    /// Never shows the password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "redis://{}/{}", self.addr, self.db)
    }
}

/// Parses `redis://[user:password@]HOST:PORT[/DB]`; the password may also
/// come from `NATTER_REDIS_PASSWORD`. Errors never repeat the password.
pub fn parse_url(url: &str, env_password: Option<String>) -> Result<RedisUrl, String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or("--cluster: expected redis://HOST:PORT[/DB]")?;
    let (auth, rest) = match rest.rsplit_once('@') {
        Some((auth, rest)) => (Some(auth), rest),
        None => (None, rest),
    };
    let (hostport, db) = match rest.split_once('/') {
        Some((hp, db)) if !db.is_empty() => {
            (hp, db.parse().map_err(|_| "--cluster: bad DB number")?)
        }
        Some((hp, _)) => (hp, 0),
        None => (rest, 0),
    };
    let addr = crate::config::resolve("--cluster", hostport)
        .map_err(|e| e.to_string().replace(url, "redis://…"))?;
    let (user, password) = match auth.map(|a| a.split_once(':')) {
        Some(Some((user, pass))) => (
            (!user.is_empty()).then(|| user.to_string()),
            Some(pass.to_string()),
        ),
        Some(None) => (None, Some(auth.unwrap_or_default().to_string())),
        None => (None, env_password),
    };
    Ok(RedisUrl {
        addr,
        db,
        user,
        password,
    })
}
