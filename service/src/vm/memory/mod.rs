//! A VM's memory on disk: saved (a managed save, a sleeping site's made small), stored small
//! (lzop in libvirt's own format, or a delta to the golden's), and restored from a delta fed
//! through a pipe. The libvirt save file format they all read is in `save_file`.
pub(super) mod compress;
pub(super) mod delta;
mod restore;
mod save;
mod save_file;
pub(super) mod wake_feed;

pub use compress::Compressed;
pub(super) use save::{save_domain, shrink_save_file};
pub(super) use save_file::{head_xml, read_head, rewrite_save_xml};
#[cfg(test)]
pub(super) use save_file::save_file_bytes;
