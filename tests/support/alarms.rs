//! CloudWatch metric alarms on moto's server, made and flipped by the
//! tests of gates and strategies.

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};

use super::moto::Moto;

/// A CloudWatch client on `moto`, with the metric alarm `name` made and OK.
pub async fn alarm(moto: &Moto, name: &str) -> aws_sdk_cloudwatch::Client {
    let aws = super::sdk_config(&moto.url, true).await;
    let cw = aws_sdk_cloudwatch::Client::new(&aws);
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("AWS/ApplicationELB")
        .metric_name("HTTPCode_Target_5XX_Count")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("put metric alarm");
    set_alarm(&cw, name, StateValue::Ok, "Threshold Crossed: 0 datapoints").await;
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
