//! What a publish does for a subscriber that is not keeping up.

use duplex::CloseCode;

/// What to do with a subscriber whose connection already has more than its
/// [`write_buffer_limit`](duplex::Config::write_buffer_limit) waiting when a message for it is
/// published. A publish never waits for one subscriber: one slow client must not slow the others.
///
/// The policy applies when the connection's [`Sender`](duplex::Sender) refuses with `Full` (its
/// own `Config::slow_consumer` left at the default, `Reject`). A connection configured to drop or
/// close by itself does so, and the publish counts the outcome the same way.
///
/// ```
/// use duplex_pubsub::{PubSub, SlowSubscriber};
/// let pubsub = PubSub::builder().slow_subscriber(SlowSubscriber::close_try_again_later()).build().unwrap();
/// # let _ = pubsub;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SlowSubscriber {
    /// Skip this message for that subscriber; it stays subscribed and gets later messages once it
    /// catches up. Right for feeds where the next value replaces the last (prices, positions,
    /// progress). The default, as in uWebSockets.
    #[default]
    Drop,
    /// Close the subscriber's connection with this code after what it already has queued, and
    /// unsubscribe it from everything: right when a gap would corrupt what the client shows
    /// (a chat log, a document being edited), and the client can reconnect and resynchronise.
    /// Use 1013 (try again later) or 1008 (policy violation).
    Close(CloseCode),
}

impl SlowSubscriber {
    /// Close with 1013 (try again later): the client may reconnect.
    pub const fn close_try_again_later() -> Self {
        SlowSubscriber::Close(CloseCode::TRY_AGAIN_LATER)
    }

    /// Close with 1008 (policy violation): reading too slowly is against the rules here.
    pub const fn close_policy_violation() -> Self {
        SlowSubscriber::Close(CloseCode::POLICY_VIOLATION)
    }
}
