//! Naming this replica in leases: the ECS task id when running on ECS (read
//! from the task metadata endpoint v4), else the host name and process id.

use std::time::Duration;

/// The ECS task id, or `host-pid` off ECS or when the endpoint does not answer.
pub async fn default_id() -> String {
    if let Ok(uri) = std::env::var("ECS_CONTAINER_METADATA_URI_V4") {
        match tokio::time::timeout(Duration::from_secs(2), task_id(&uri)).await {
            Ok(Ok(id)) => return id,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "ECS task metadata unreadable; naming the replica by host")
            }
            Err(_) => {
                tracing::warn!("ECS task metadata did not answer; naming the replica by host")
            }
        }
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "replica".into());
    format!("{host}-{}", std::process::id())
}

/// GET `{uri}/task` and the last segment of its `TaskARN`.
async fn task_id(uri: &str) -> Result<String, String> {
    let (status, body) = crate::operator::health::http_get(&format!("{uri}/task")).await?;
    if status != 200 {
        return Err(format!("task metadata answered {status}"));
    }
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("task metadata is not JSON: {e}"))?;
    json["TaskARN"]
        .as_str()
        .and_then(|arn| arn.rsplit('/').next())
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| "task metadata has no TaskARN".to_string())
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    #[tokio::test]
    async fn reads_the_task_id_from_the_metadata_endpoint() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("GET /v4/abc/task "));
            let body =
                r#"{"TaskARN":"arn:aws:ecs:us-east-1:123456789012:task/prod/0123456789abcdef"}"#;
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(reply.as_bytes()).await.unwrap();
        });
        let id = task_id(&format!("http://{addr}/v4/abc")).await.unwrap();
        assert_eq!(id, "0123456789abcdef");
    }
}
