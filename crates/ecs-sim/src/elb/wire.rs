//! The AWS Query protocol as Elastic Load Balancing v2 speaks it: a
//! form-encoded request (`Action=...&Targets.member.1.Id=...`) read into a
//! JSON tree, answers written as ELB's XML, and errors in its
//! `<ErrorResponse>` shape.

use std::fmt::{Display, Write};

use serde_json::{Map, Value};

use crate::wire::ApiError;

pub const NAMESPACE: &str = "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/";

/// A form body's `Action`, and its other members as a tree: `A.member.2.B=x`
/// becomes `{"A": [null, {"B": "x"}]}`; every leaf is a string.
pub fn parse_form(body: &[u8]) -> Option<(String, Value)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut action = None;
    let mut root = Value::Object(Map::new());
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (key, value) = (decode(key)?, decode(value)?);
        match key.as_str() {
            "Action" => action = Some(value),
            "Version" => {}
            _ => insert(&mut root, &key.split('.').collect::<Vec<_>>(), value),
        }
    }
    Some((action?, root))
}

fn insert(node: &mut Value, path: &[&str], value: String) {
    let Some((first, rest)) = path.split_first() else {
        *node = Value::String(value);
        return;
    };
    if *first == "member"
        && let Some(index) = rest.first().and_then(|n| n.parse::<usize>().ok())
        && index >= 1
    {
        if !node.is_array() {
            *node = Value::Array(Vec::new());
        }
        if let Value::Array(items) = node {
            if items.len() < index {
                items.resize(index, Value::Null);
            }
            insert(&mut items[index - 1], &rest[1..], value);
        }
        return;
    }
    if !node.is_object() {
        *node = Value::Object(Map::new());
    }
    if let Value::Object(map) = node {
        insert(
            map.entry(first.to_string()).or_insert(Value::Null),
            rest,
            value,
        );
    }
}

/// `application/x-www-form-urlencoded` decoding; `None` for a broken escape.
fn decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Reads members of a request tree, answering ELB's ValidationError for a
/// value of the wrong shape.
pub struct Params<'a>(pub &'a Value);

impl Params<'_> {
    pub fn str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub fn required(&self, name: &str) -> Result<&str, ApiError> {
        self.str(name).ok_or_else(|| {
            validation(format!(
                "1 validation error detected: Value null at '{}' failed to satisfy constraint: Member must not be null",
                lower_first(name)
            ))
        })
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.str(name) {
            None => Ok(None),
            Some(s) => s.parse().map(Some).map_err(|_| {
                validation(format!(
                    "1 validation error detected: Value '{s}' at '{}' failed to satisfy constraint: Member must be a number",
                    lower_first(name)
                ))
            }),
        }
    }

    /// An integer member within AWS's bounds, in AWS's wording when outside.
    pub fn int_in(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        let Some(v) = self.int(name)? else {
            return Ok(None);
        };
        let field = lower_first(name);
        if v < min {
            return Err(validation(format!(
                "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: Member must have value greater than or equal to {min}"
            )));
        }
        if v > max {
            return Err(validation(format!(
                "1 validation error detected: Value '{v}' at '{field}' failed to satisfy constraint: Member must have value less than or equal to {max}"
            )));
        }
        Ok(Some(v))
    }

    /// A `.member.N` list; an empty value (`Names=`) is an empty list.
    pub fn list(&self, name: &str) -> Vec<&Value> {
        match self.0.get(name) {
            Some(Value::Array(items)) => items.iter().filter(|v| !v.is_null()).collect(),
            _ => Vec::new(),
        }
    }

    pub fn strings(&self, name: &str) -> Vec<String> {
        self.list(name)
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }
}

fn lower_first(name: &str) -> String {
    let mut c = name.chars();
    c.next()
        .map(|f| f.to_lowercase().chain(c).collect())
        .unwrap_or_default()
}

pub fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationError", message)
}

/// An XML document built in order; text is escaped.
#[derive(Default)]
pub struct Xml(String);

impl Xml {
    pub fn text(&mut self, tag: &str, value: impl Display) -> &mut Self {
        let _ = write!(self.0, "<{tag}>");
        escape_into(&mut self.0, &value.to_string());
        let _ = write!(self.0, "</{tag}>");
        self
    }

    /// Bare text, for the members of a list of strings.
    pub fn value(&mut self, value: impl Display) -> &mut Self {
        escape_into(&mut self.0, &value.to_string());
        self
    }

    pub fn opt(&mut self, tag: &str, value: Option<impl Display>) -> &mut Self {
        if let Some(v) = value {
            self.text(tag, v);
        }
        self
    }

    pub fn nest(&mut self, tag: &str, inner: impl FnOnce(&mut Xml)) -> &mut Self {
        let _ = write!(self.0, "<{tag}>");
        inner(self);
        let _ = write!(self.0, "</{tag}>");
        self
    }

    /// `<tag><member>..</member>...</tag>`, as Query lists are written.
    pub fn list<T>(
        &mut self,
        tag: &str,
        items: impl IntoIterator<Item = T>,
        mut each: impl FnMut(&mut Xml, T),
    ) -> &mut Self {
        self.nest(tag, |x| {
            for item in items {
                x.nest("member", |m| each(m, item));
            }
        })
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
}

/// The whole answer to `action`, its result inside.
pub fn response(action: &str, result: &str, request_id: &str) -> String {
    format!(
        "<{action}Response xmlns=\"{NAMESPACE}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></{action}Response>"
    )
}

pub fn error_response(e: &ApiError, request_id: &str) -> String {
    let kind = if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    let mut x = Xml::default();
    x.nest("ErrorResponse", |x| {
        x.nest("Error", |x| {
            x.text("Type", kind)
                .text("Code", e.code)
                .text("Message", &e.message);
        })
        .text("RequestId", request_id);
    });
    x.into_string()
}

/// Epoch seconds as ISO 8601 with milliseconds, as ELB writes times.
pub fn timestamp(epoch: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(epoch.max(0.0));
    humantime::format_rfc3339_millis(t).to_string()
}

pub fn load_balancer_not_found() -> ApiError {
    ApiError::new(
        "LoadBalancerNotFound",
        "One or more load balancers not found",
    )
}

pub fn target_group_not_found() -> ApiError {
    ApiError::new("TargetGroupNotFound", "One or more target groups not found")
}

/// ELB's rule for load balancer and target group names.
pub fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 32 {
        return Err(validation(format!(
            "{what} name '{name}' cannot be longer than '32' characters"
        )));
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(validation(format!(
            "{what} name '{name}' can only contain characters that are alphanumeric characters or hyphens(-)"
        )));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(validation(format!(
            "{what} name '{name}' cannot begin or end with '-'"
        )));
    }
    if name.starts_with("internal-") {
        return Err(validation(format!(
            "{what} name '{name}' cannot begin with 'internal-'"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_becomes_a_tree_of_lists_and_members() {
        let (action, tree) = parse_form(
            b"Action=RegisterTargets&Version=2015-12-01&TargetGroupArn=arn%3Aaws%3Ax&Targets.member.2.Id=10.0.0.2&Targets.member.1.Id=10.0.0.1&Targets.member.1.Port=80&Names=",
        )
        .unwrap();
        assert_eq!(action, "RegisterTargets");
        assert_eq!(
            tree,
            serde_json::json!({"TargetGroupArn": "arn:aws:x", "Names": "",
                "Targets": [{"Id": "10.0.0.1", "Port": "80"}, {"Id": "10.0.0.2"}]})
        );
        assert!(Params(&tree).list("Names").is_empty());
        assert!(parse_form(b"Targets.member.1.Id=x").is_none(), "no Action");
        assert!(parse_form(b"Action=%zz").is_none(), "broken escape");
    }

    #[test]
    fn errors_are_elb_error_responses() {
        let e = ApiError::new("TargetGroupNotFound", "One or more target groups not found");
        assert_eq!(
            error_response(&e, "r1"),
            "<ErrorResponse><Error><Type>Sender</Type><Code>TargetGroupNotFound</Code><Message>One or more target groups not found</Message></Error><RequestId>r1</RequestId></ErrorResponse>"
        );
    }
}
