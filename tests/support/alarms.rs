//! CloudWatch metric alarms on moto's server, made (as the fault campaign
//! makes them: `support::alarm`) and flipped by the tests of gates and
//! strategies.

use aws_sdk_cloudwatch::types::StateValue;

use super::moto::Moto;

/// A CloudWatch client on `moto`, with the metric alarm `name` made and OK.
pub async fn alarm(moto: &Moto, name: &str) -> aws_sdk_cloudwatch::Client {
    let aws = super::sdk_config(&moto.url, true).await;
    let cw = aws_sdk_cloudwatch::Client::new(&aws);
    super::alarm::put_gate_alarm(&cw, name)
        .await
        .expect("put metric alarm");
    cw
}

/// Puts alarm `name` in `state`, with CloudWatch's `reason`.
pub async fn set_alarm(
    cw: &aws_sdk_cloudwatch::Client,
    name: &str,
    state: StateValue,
    reason: &str,
) {
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason(reason)
        .send()
        .await
        .expect("set alarm state");
}
