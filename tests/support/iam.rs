//! Just enough of IAM's policy evaluation to ask whether a set of identity
//! policies allows one request: Allow and Deny statements; Action and
//! Resource with `*` and `?` wildcards, ARNs compared segment by segment;
//! conditions ArnLike/ArnEquals and StringEquals/StringLike, with a missing
//! key failing the condition, as IAM does. Enough for the operator's task
//! role, which uses nothing else; anything else in a policy is refused
//! loudly rather than guessed at.

use serde_json::Value;

/// One authorization question: an action on a resource, with its context keys.
#[derive(Debug, Clone)]
pub struct Request {
    pub action: String,
    pub resource: String,
    pub context: Vec<(String, String)>,
}

impl Request {
    pub fn new(action: &str, resource: &str) -> Self {
        Self {
            action: action.to_string(),
            resource: resource.to_string(),
            context: Vec::new(),
        }
    }

    pub fn with(mut self, key: &str, value: &str) -> Self {
        self.context.push((key.to_string(), value.to_string()));
        self
    }

    fn value_of(&self, key: &str) -> Option<&str> {
        self.context
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// Whether `policies` (policy documents) allow `request`: some Allow
/// statement matches and no Deny statement does.
pub fn allows(policies: &[&Value], request: &Request) -> bool {
    let mut allowed = false;
    for policy in policies {
        for statement in as_list(&policy["Statement"]) {
            if !matches(statement, request) {
                continue;
            }
            match statement["Effect"].as_str() {
                Some("Allow") => allowed = true,
                Some("Deny") => return false,
                other => panic!("statement with Effect {other:?}: {statement}"),
            }
        }
    }
    allowed
}

/// Every action named in `policies`, as written.
pub fn actions(policies: &[&Value]) -> Vec<String> {
    let mut all: Vec<String> = policies
        .iter()
        .flat_map(|p| as_list(&p["Statement"]))
        .flat_map(|s| as_list(&s["Action"]))
        .map(|a| a.as_str().expect("action is a string").to_string())
        .collect();
    all.sort();
    all.dedup();
    all
}

fn matches(statement: &Value, request: &Request) -> bool {
    for unsupported in ["NotAction", "NotResource", "Principal", "NotPrincipal"] {
        assert!(
            statement.get(unsupported).is_none(),
            "{unsupported} is not modelled here: {statement}"
        );
    }
    let action = as_list(&statement["Action"]).iter().any(|a| {
        glob(
            &a.as_str().unwrap().to_lowercase(),
            &request.action.to_lowercase(),
        )
    });
    let resource = as_list(&statement["Resource"])
        .iter()
        .any(|r| arn_like(r.as_str().unwrap(), &request.resource));
    action && resource && conditions_hold(&statement["Condition"], request)
}

fn conditions_hold(conditions: &Value, request: &Request) -> bool {
    let Some(operators) = conditions.as_object() else {
        assert!(
            conditions.is_null(),
            "Condition must be an object: {conditions}"
        );
        return true;
    };
    operators.iter().all(|(operator, keys)| {
        keys.as_object()
            .expect("condition keys")
            .iter()
            .all(|(key, wanted)| {
                let Some(actual) = request.value_of(key) else {
                    return false;
                };
                as_list(wanted).iter().any(|w| {
                    let w = w.as_str().expect("condition value is a string");
                    match operator.as_str() {
                        "ArnLike" | "ArnEquals" => arn_like(w, actual),
                        "StringEquals" => w == actual,
                        "StringLike" => glob(w, actual),
                        other => panic!("condition operator {other} is not modelled here"),
                    }
                })
            })
    })
}

/// ARN matching: `*` alone matches anything; otherwise the six colon-separated
/// segments are matched one by one, the last one taking any further colons.
fn arn_like(pattern: &str, arn: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| glob(p, a))
}

/// `*` any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn as_list(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        one => vec![one],
    }
}
