//! A tiny hand-written JSON object writer: enough for one flat-ish result
//! object per run, no serde needed.

use std::fmt::Write as _;

/// Builds one JSON object. Keys are written in insertion order.
pub struct Obj {
    buf: String,
    first: bool,
}

impl Default for Obj {
    fn default() -> Self {
        Self::new()
    }
}

impl Obj {
    pub fn new() -> Self {
        Obj {
            buf: String::from("{"),
            first: true,
        }
    }

    fn key(&mut self, k: &str) {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
        push_str(&mut self.buf, k);
        self.buf.push(':');
    }

    pub fn str(&mut self, k: &str, v: &str) -> &mut Self {
        self.key(k);
        push_str(&mut self.buf, v);
        self
    }

    pub fn opt_str(&mut self, k: &str, v: Option<&str>) -> &mut Self {
        match v {
            Some(v) => self.str(k, v),
            None => self.null(k),
        }
    }

    pub fn u64(&mut self, k: &str, v: u64) -> &mut Self {
        self.key(k);
        let _ = write!(self.buf, "{v}");
        self
    }

    pub fn opt_u64(&mut self, k: &str, v: Option<u64>) -> &mut Self {
        match v {
            Some(v) => self.u64(k, v),
            None => self.null(k),
        }
    }

    /// A float with `decimals` digits after the point; NaN and infinities
    /// become `null` (JSON has no spelling for them).
    pub fn f64(&mut self, k: &str, v: f64, decimals: usize) -> &mut Self {
        self.key(k);
        if v.is_finite() {
            let _ = write!(self.buf, "{v:.decimals$}");
        } else {
            self.buf.push_str("null");
        }
        self
    }

    pub fn opt_f64(&mut self, k: &str, v: Option<f64>, decimals: usize) -> &mut Self {
        match v {
            Some(v) => self.f64(k, v, decimals),
            None => self.null(k),
        }
    }

    pub fn bool(&mut self, k: &str, v: bool) -> &mut Self {
        self.key(k);
        self.buf.push_str(if v { "true" } else { "false" });
        self
    }

    pub fn null(&mut self, k: &str) -> &mut Self {
        self.key(k);
        self.buf.push_str("null");
        self
    }

    pub fn obj(&mut self, k: &str, v: Obj) -> &mut Self {
        self.key(k);
        self.buf.push_str(&v.finish());
        self
    }

    /// An array of strings.
    pub fn strs<'a>(&mut self, k: &str, v: impl IntoIterator<Item = &'a str>) -> &mut Self {
        self.key(k);
        self.buf.push('[');
        for (i, s) in v.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            push_str(&mut self.buf, s);
        }
        self.buf.push(']');
        self
    }

    /// An array of objects.
    pub fn objs(&mut self, k: &str, v: impl IntoIterator<Item = Obj>) -> &mut Self {
        self.key(k);
        self.buf.push('[');
        for (i, o) in v.into_iter().enumerate() {
            if i > 0 {
                self.buf.push(',');
            }
            self.buf.push_str(&o.finish());
        }
        self.buf.push(']');
        self
    }

    pub fn finish(mut self) -> String {
        self.buf.push('}');
        self.buf
    }
}

fn push_str(buf: &mut String, s: &str) {
    buf.push('"');
    for c in s.chars() {
        match c {
            '"' => buf.push_str("\\\""),
            '\\' => buf.push_str("\\\\"),
            '\n' => buf.push_str("\\n"),
            '\r' => buf.push_str("\\r"),
            '\t' => buf.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(buf, "\\u{:04x}", c as u32);
            }
            c => buf.push(c),
        }
    }
    buf.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fields_in_order_and_escapes() {
        let mut inner = Obj::new();
        inner.u64("p50", 7);
        let mut o = Obj::new();
        o.str("s", "a\"b\\c\n\u{1}")
            .u64("n", 3)
            .f64("f", 1.25, 2)
            .f64("nan", f64::NAN, 1)
            .bool("b", true)
            .opt_u64("none", None)
            .obj("inner", inner);
        assert_eq!(
            o.finish(),
            r#"{"s":"a\"b\\c\n\u0001","n":3,"f":1.25,"nan":null,"b":true,"none":null,"inner":{"p50":7}}"#
        );
        let mut a = Obj::new();
        a.u64("pid", 1);
        let mut o = Obj::new();
        o.strs("addrs", ["x", "y\""])
            .strs("none", [])
            .objs("pids", [a, Obj::new()])
            .objs("empty", []);
        assert_eq!(
            o.finish(),
            r#"{"addrs":["x","y\""],"none":[],"pids":[{"pid":1},{}],"empty":[]}"#
        );
    }
}
