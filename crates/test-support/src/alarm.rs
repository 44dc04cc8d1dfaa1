//! A CloudWatch alarm on moto's server for a gate to watch: a 5xx-count
//! alarm as a load balancer's would be, set by hand with SetAlarmState.

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};

/// Puts alarm `name` (a target 5xx count over 5 a minute) and sets it OK.
pub async fn put_gate_alarm(
    cw: &aws_sdk_cloudwatch::Client,
    name: &str,
) -> Result<(), aws_sdk_cloudwatch::Error> {
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
        .await?;
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(StateValue::Ok)
        .state_reason("Threshold Crossed: 0 datapoints")
        .send()
        .await?;
    Ok(())
}
