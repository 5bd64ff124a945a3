//! The picture of the door posted when it rings: an `m.image` whose caption mentions the people
//! to ring, so that clients that cannot take these calls still notify them.

use matrix_sdk::attachment::{AttachmentConfig, AttachmentInfo, BaseImageInfo};
use matrix_sdk::ruma::events::room::message::TextMessageEventContent;
use matrix_sdk::ruma::events::Mentions;
use matrix_sdk::ruma::{OwnedUserId, UInt};
use matrix_sdk::RoomMemberships;
use tokio::sync::watch;

use super::{joined_room, Failure, Target};
use crate::call::{RoomId, UserId};

/// The caption's words before the mentions.
pub const CAPTION: &str = "Someone is at the door";

/// Uploads `jpeg` and posts it into `room`, mentioning those of `mention` who are joined
/// members. Returns who was mentioned.
pub(super) async fn post(
    target: Target<'_>,
    room: &RoomId,
    jpeg: &[u8],
    (width, height): (u32, u32),
    mention: &[UserId],
    synced: &mut watch::Receiver<bool>,
) -> Result<Vec<String>, Failure> {
    let joined = joined_room(target, room, synced).await?;
    let members = joined
        .members(RoomMemberships::JOIN)
        .await
        .map_err(|e| Failure::Transient(format!("cannot list the room's members: {e}")))?;
    let to: Vec<OwnedUserId> = members
        .iter()
        .map(|m| m.user_id().to_owned())
        .filter(|u| mention.iter().any(|m| m.0 == u.as_str()))
        .collect();
    let names: Vec<String> = to.iter().map(ToString::to_string).collect();
    let (plain, html) = caption(&names);
    let info = BaseImageInfo {
        width: Some(UInt::from(width)),
        height: Some(UInt::from(height)),
        size: UInt::new(jpeg.len() as u64),
        ..BaseImageInfo::default()
    };
    let config = AttachmentConfig::new()
        .info(AttachmentInfo::Image(info))
        .caption(Some(TextMessageEventContent::html(plain, html)))
        .mentions(Some(Mentions::with_user_ids(to)));
    joined
        .send_attachment("door.jpg", &mime::IMAGE_JPEG, jpeg.to_vec(), config)
        .await
        .map_err(|e| Failure::Transient(e.to_string()))?;
    Ok(names)
}

/// The caption, plain and as HTML (with each user as a mention link, which clients show as a
/// pill).
fn caption(users: &[String]) -> (String, String) {
    if users.is_empty() {
        return (CAPTION.to_owned(), CAPTION.to_owned());
    }
    let plain = format!("{CAPTION}: {}", users.join(" "));
    let links: Vec<String> = users
        .iter()
        .map(|u| format!("<a href=\"https://matrix.to/#/{u}\">{u}</a>"))
        .collect();
    let html = format!("{CAPTION}: {}", links.join(" "));
    (plain, html)
}
