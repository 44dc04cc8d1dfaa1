//! The bound on every message a record keeps: causes quote ECS, hooks
//! answer what they like, and a record must stay far below DynamoDB's
//! 400 KB item limit with its events and notices, each carrying a message.

/// The longest message or event kept, in characters.
pub(crate) const MAX_MESSAGE_CHARS: usize = 1000;

/// `text`, cut to [`MAX_MESSAGE_CHARS`] with "…" when longer.
pub(crate) fn bounded(text: String) -> String {
    match text.char_indices().nth(MAX_MESSAGE_CHARS) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}
