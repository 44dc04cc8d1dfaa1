//! What `apply` asks AWS, and only when it must: the dry-run plan of a
//! request against its live service (with its gate alarms and hooks), and
//! whether the alarms a gated request names exist.

use chrono::Utc;

use crate::cli::CliError;
use crate::cli::apply::Checked;
use crate::request::status::Phase;
use crate::store::{Kind, Store};

/// The dry-run plan of one request against its live service.
pub(super) async fn preview<S: Store>(
    store: &S,
    c: &Checked,
    aws: Option<&aws_config::SdkConfig>,
) -> Result<String, CliError> {
    let spec = crate::request::spec::parse_spec(&c.doc.spec, "spec")
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let Some(sdk) = aws else {
        return Err(CliError::Unreachable("no AWS configuration".into()));
    };
    let pool = std::sync::Arc::new(client_pool(sdk));
    let clients = pool
        .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
        .await;
    // The look a Pending request's decision wants (the service, its tasks
    // and its scalable target), with the cluster's capacity and every
    // task's protection.
    let want = crate::aws::observe::Want::preview(&clients, &spec, Utc::now());
    let obs = crate::aws::observe::observe(&pool, want)
        .await
        .map_err(|e| {
            CliError::Unreachable(format!(
                "cannot observe {}/{}: {e}",
                spec.cluster, spec.service
            ))
        })?;
    if let Err(reason) = &obs.service {
        return Ok(format!(
            "  Plan: the request would fail at once: cannot recycle {}/{}: {reason}\n",
            spec.cluster, spec.service
        ));
    }
    let history: Vec<_> = store
        .list_all(Kind::RecycleRequest)
        .await?
        .iter()
        .filter(|r| {
            crate::request::spec::request_spec(&r.spec)
                .is_ok_and(|s| s.cluster == spec.cluster && s.service == spec.service)
        })
        .filter_map(|r| crate::request::status::request_status(r.status.as_ref()).ok())
        .filter(|s| s.phase == Phase::Succeeded)
        .collect();
    let now = Utc::now();
    let estimate = crate::request::preview::estimate(&history, &obs.tasks);
    let p = crate::request::preview::rehearse(&c.doc.name, &spec, &obs, estimate, now);
    let mut text = crate::request::preview::render(&p, &spec, now);
    if let Some(gate) = spec.alarm_gate() {
        let clients = pool
            .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
            .await;
        let seen = crate::gates::observe::describe(&clients, gate).await;
        text.push_str(&crate::gates::preview::render(gate, &seen));
    }
    text.push_str(&images(&pool, &spec, &obs).await);
    let batches = spec.strategy.sizes(p.tasks.len(), spec.batch_size).len();
    text.push_str(&crate::hooks::preview::render(
        &spec.hooks,
        p.tasks.len(),
        batches,
    ));
    Ok(text)
}

/// The gate alarms of a request that do not exist, as a sentence, when
/// the CLI can see CloudWatch; `Ok(None)` when they all do, `Err` when the
/// CLI cannot tell (the operator checks them again when the run starts).
pub(super) async fn missing_gate_alarms(
    doc: &crate::cli::manifest::Document,
    sdk: &aws_config::SdkConfig,
) -> Result<Option<String>, String> {
    let Ok(spec) = crate::request::spec::parse_spec(&doc.spec, "spec") else {
        return Ok(None);
    };
    let Some(gate) = spec.alarm_gate() else {
        return Ok(None);
    };
    let pool = client_pool(sdk);
    let clients = pool
        .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
        .await;
    let seen = crate::gates::observe::describe(&clients, gate).await;
    match (&seen, crate::gates::decide::verdict(gate, Some(&seen))) {
        (Err(e), _) => Err(e.message.clone()),
        (Ok(_), crate::gates::decide::Verdict::Fail(why)) => {
            let field = if gate.prefix.is_some() && gate.names.is_empty() {
                "prefix"
            } else {
                "names"
            };
            Ok(Some(format!("spec.gates.alarms.{field}: {why}")))
        }
        _ => Ok(None),
    }
}

/// The clients of one command: the whole API share, metrics no one reads.
fn client_pool(sdk: &aws_config::SdkConfig) -> crate::aws::ClientPool {
    crate::aws::ClientPool::new(
        sdk.clone(),
        crate::aws::limit::ApiShare::default(),
        crate::metrics::Metrics::new(),
    )
}

/// What the replacements will start from: the images of the newest task
/// meant to run (every task of a deployment starts from the same digests).
async fn images(
    pool: &crate::aws::ClientPool,
    spec: &crate::request::spec::RecycleSpec,
    obs: &crate::request::observation::Observation,
) -> String {
    let Some(newest) = obs
        .tasks
        .iter()
        .filter(|t| t.desired_running)
        .max_by_key(|t| t.started_at)
    else {
        return String::new();
    };
    let clients = pool
        .for_role(spec.role_arn.as_deref(), spec.external_id.as_deref())
        .await;
    match crate::aws::images::images(&clients, &spec.cluster, &newest.arn).await {
        Ok(images) => crate::request::preview::images::render(&images),
        Err(e) => format!(
            "  Images: could not be read ({e}); a recycle restarts the digests the current deployment pinned\n"
        ),
    }
}
