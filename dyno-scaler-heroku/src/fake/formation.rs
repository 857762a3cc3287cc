//! Formation updates (one type or a batch, with Heroku's validation and limits) and the dyno list with
//! `Range` pagination.

use hyper::http::request::Parts;
use serde_json::{Value, json};

use super::routes::{LIMITS_URL, Reply, error, ok};
use super::state::{SIZES, State, canonical_size, size_uuid};

pub(super) fn find_formation(s: &State, ai: usize, t: &str) -> Option<usize> {
    s.apps[ai].formations.iter().position(|f| f.process_type == t || f.id == t)
}

pub(super) struct Update {
    quantity: Option<u32>,
    size: Option<&'static str>,
}

pub(super) fn validate_update(
    s: &State,
    ai: usize,
    pt: &str,
    obj: &serde_json::Map<String, Value>,
) -> Result<Update, Reply> {
    let current = s.apps[ai].formations.iter().find(|f| f.process_type == pt).expect("exists");
    let invalid = |m: &str| error(422, "invalid_params", m);
    let quantity = match obj.get("quantity") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(q) if q >= 0 => Some(q as u32),
            Some(_) => return Err(invalid("Quantity must be a positive integer.")),
            None => return Err(invalid("Quantity must be an integer.")),
        },
        Some(Value::String(q)) if s.config.allow_string_quantity => {
            let q = q.trim();
            let parsed = if let Some(d) = q.strip_prefix('+') {
                d.parse::<i64>().ok().map(|d| current.quantity as i64 + d)
            } else if q.starts_with('-') {
                q.parse::<i64>().ok().map(|d| current.quantity as i64 + d)
            } else {
                q.parse::<i64>().ok()
            };
            match parsed {
                Some(v) if v >= 0 => Some(v as u32),
                _ => return Err(invalid("Quantity must be a positive integer.")),
            }
        }
        Some(_) => return Err(invalid("Quantity must be an integer.")),
    };
    let size_name = match (obj.get("dyno_size"), obj.get("size")) {
        (Some(Value::Object(ds)), _) => match (ds.get("name"), ds.get("id")) {
            (Some(Value::String(n)), _) => Some(n.clone()),
            (_, Some(Value::String(id))) => match SIZES.iter().find(|(n, _)| size_uuid(n) == *id) {
                Some((n, _)) => Some((*n).to_owned()),
                None => return Err(invalid("Couldn't find that dyno size.")),
            },
            _ => return Err(invalid("dyno_size must have an id or a name.")),
        },
        (Some(_), _) => return Err(invalid("dyno_size must be an object.")),
        (None, Some(Value::String(n))) => Some(n.clone()),
        (None, Some(_)) => return Err(invalid("size must be a string.")),
        (None, None) => None,
    };
    let size = match size_name {
        Some(n) => match canonical_size(&n) {
            Some(c) => Some(c),
            None => {
                let names: Vec<&str> = SIZES.iter().map(|(n, _)| *n).collect();
                return Err(invalid(&format!("No such size as {n}. Available dyno sizes are {}.", names.join(", "))));
            }
        },
        None => None,
    };
    // Limits: per size and type, per type (knob), per app.
    if let Some(q) = quantity {
        let eff_size = size.unwrap_or_else(|| canonical_size(&current.size).unwrap_or("Standard-1X"));
        let size_limit = SIZES.iter().find(|(n, _)| *n == eff_size).and_then(|(_, l)| *l);
        let type_limit = s.type_limits.get(&(s.apps[ai].name.clone(), pt.to_owned())).copied();
        let limit = [size_limit, type_limit].into_iter().flatten().min();
        if let Some(l) = limit
            && q > l
        {
            return Err(limit_error(l, eff_size, q));
        }
        let others: u32 = s.apps[ai].formations.iter().filter(|f| f.process_type != pt).map(|f| f.quantity).sum();
        if others + q > s.config.app_limit {
            return Err(limit_error(s.config.app_limit, eff_size, q));
        }
    }
    Ok(Update { quantity, size })
}

pub(super) fn limit_error(limit: u32, size: &str, requested: u32) -> Reply {
    Reply {
        status: 422,
        body: json!({
            "limit": limit,
            "size": requested,
            "id": "cannot_run_above_limit",
            "message": format!("Cannot run more than {limit} {size} size dynos."),
            "url": LIMITS_URL,
        }),
        remaining: None,
        extra: Vec::new(),
    }
}

pub(super) fn apply(s: &mut State, ai: usize, pt: &str, u: Update) {
    let now = s.now();
    if let Some(size) = u.size
        && let Some(f) = s.apps[ai].formations.iter_mut().find(|f| f.process_type == pt)
    {
        f.size = size.to_owned();
        f.updated = now;
    }
    if let Some(q) = u.quantity {
        let app = s.apps[ai].name.clone();
        s.apply_quantity(&app, pt, q);
    }
}

pub(super) fn batch(s: &mut State, ai: usize, body: &[u8]) -> Reply {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return error(400, "bad_request", "Invalid JSON in request body.");
    };
    let Some(items) = v.get("updates").and_then(Value::as_array) else {
        return error(422, "invalid_params", "Missing required params: updates.");
    };
    let mut planned = Vec::new();
    for item in items {
        let Some(obj) = item.as_object() else {
            return error(422, "invalid_params", "Each update must be an object.");
        };
        if let Some(k) = obj.keys().find(|k| !["type", "quantity", "dyno_size", "size"].contains(&k.as_str())) {
            return error(422, "invalid_params", &format!("Unknown parameter: {k}."));
        }
        let Some(t) = obj.get("type").and_then(Value::as_str) else {
            return error(422, "invalid_params", "Missing required params: type.");
        };
        let Some(fi) = find_formation(s, ai, t) else {
            return error(404, "not_found", &format!("Couldn't find that process type ({t})."));
        };
        let pt = s.apps[ai].formations[fi].process_type.clone();
        match validate_update(s, ai, &pt, obj) {
            Ok(u) => planned.push((pt, u)),
            Err(r) => return r,
        }
    }
    // All or nothing: every item validated before any is applied.
    let mut out = Vec::new();
    for (pt, u) in planned {
        apply(s, ai, &pt, u);
        let fi = find_formation(s, ai, &pt).expect("exists");
        out.push(json!(s.formation_json(&s.apps[ai], &s.apps[ai].formations[fi])));
    }
    ok(Value::Array(out))
}

/// Parses `Range: <field> [\]]<start>..[<end>][; max=N][, order=desc]`.
pub(super) struct Range {
    field: String,
    /// Start value, and whether it is exclusive (`]x`).
    start: Option<(String, bool)>,
    max: usize,
    desc: bool,
}

pub(super) fn parse_range(h: &str) -> Option<Range> {
    let (spec, opts) = h.split_once(';').map_or((h, ""), |(a, b)| (a, b));
    let (field, bounds) = spec.trim().split_once(' ').map_or((spec.trim(), ""), |(f, b)| (f, b.trim()));
    if field != "id" && field != "name" {
        return None;
    }
    let start = bounds.split("..").next().unwrap_or("").trim();
    let start = if start.is_empty() {
        None
    } else if let Some(x) = start.strip_prefix(']') {
        Some((x.to_owned(), true))
    } else {
        Some((start.to_owned(), false))
    };
    let mut max = 200;
    let mut desc = false;
    for o in opts.split([',', ';']).map(str::trim) {
        if let Some(m) = o.strip_prefix("max=") {
            max = m.trim().parse().ok().filter(|m| (1..=1000).contains(m))?;
        } else if o == "order=desc" {
            desc = true;
        }
    }
    Some(Range { field: field.to_owned(), start, max, desc })
}

pub(super) fn list_dynos(s: &State, ai: usize, parts: &Parts) -> Reply {
    let now = s.now();
    let app = &s.apps[ai];
    let range = parts.headers.get("range").and_then(|v| v.to_str().ok());
    let Range { field, start, max, desc } = match range.map(parse_range) {
        None => Range { field: "id".to_owned(), start: None, max: 200, desc: false },
        Some(Some(r)) => r,
        Some(None) => return error(416, "requested_range_not_satisfiable", "Invalid Range header."),
    };
    let key = |d: &super::state::FakeDyno| if field == "name" { d.name.clone() } else { d.id.clone() };
    let mut dynos: Vec<_> = app.dynos.iter().filter(|d| d.gone_at.is_none_or(|g| g > now)).collect();
    dynos.sort_by_key(|d| key(d));
    if desc {
        dynos.reverse();
    }
    if let Some((from, exclusive)) = &start {
        dynos.retain(|d| {
            let k = key(d);
            let after = if desc { k < *from } else { k > *from };
            after || (!exclusive && k == *from)
        });
    }
    let truncated = dynos.len() > max;
    let page: Vec<_> = dynos.into_iter().take(max).collect();
    let body: Vec<Value> = page.iter().map(|d| json!(s.dyno_json(app, d))).collect();
    let mut r = ok(Value::Array(body));
    r.extra.push(("Accept-Ranges", "id, name".into()));
    if let (Some(first), Some(last)) = (page.first(), page.last()) {
        r.extra.push(("Content-Range", format!("{field} {}..{}; max={max}", key(first), key(last))));
        if truncated {
            r.status = 206;
            let order = if desc { ", order=desc" } else { "" };
            r.extra.push(("Next-Range", format!("{field} ]{}..; max={max}{order}", key(last))));
        }
    }
    r
}
