//! What a recycle picks up, said where a user decides: a recycle restarts
//! the same image digests (ECS pins a tag to a digest per deployment), and
//! picks up what is read at start — secrets, parameters, hosts. An image
//! pushed since under the same tag needs a deployment.

use crate::request::observation::ContainerImage;

/// The images section of the dry run, from the images of one running task.
pub(crate) fn render(images: &[ContainerImage]) -> String {
    let mut out = String::from(
        "  Images: the replacements start from the digests the service's current deployment pinned; new secret values, parameters and hosts are picked up, a newer image under the same tag is not\n",
    );
    for image in images {
        let digest = image.digest.as_deref().unwrap_or("(no digest reported)");
        let tagged = !image.written.contains('@');
        let line = match (tagged, image.pinned) {
            (true, true) => format!(
                "    {}: {} → {digest}\n      Warning: {} is a tag the registry may have moved since the deployment; a recycle restarts {digest}. To pick up the image the tag names now, deploy (aws ecs update-service --force-new-deployment)\n",
                image.container, image.written, image.written
            ),
            (true, false) => format!(
                "    {}: {} (versionConsistency: disabled: each replacement pulls the tag as it is at its start)\n",
                image.container, image.written
            ),
            (false, _) => format!(
                "    {}: {} (a digest: the same image every time)\n",
                image.container, image.written
            ),
        };
        out.push_str(&line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(written: &str, pinned: bool) -> ContainerImage {
        ContainerImage {
            container: "app".into(),
            written: written.into(),
            digest: Some("sha256:abc".into()),
            pinned,
        }
    }

    #[test]
    fn a_tag_is_named_with_its_digest_and_a_warning_a_digest_without() {
        let text = render(&[image("nginx:latest", true)]);
        assert!(text.contains("app: nginx:latest → sha256:abc"), "{text}");
        assert!(
            text.contains("Warning: nginx:latest is a tag the registry may have moved"),
            "{text}"
        );
        assert!(
            text.contains("deploy (aws ecs update-service --force-new-deployment)"),
            "{text}"
        );
        let text = render(&[image("nginx@sha256:abc", true)]);
        assert!(
            text.contains("a digest: the same image every time") && !text.contains("Warning"),
            "{text}"
        );
        let text = render(&[image("nginx:latest", false)]);
        assert!(text.contains("versionConsistency: disabled"), "{text}");
    }
}
