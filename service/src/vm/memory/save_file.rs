//! libvirt's save file format (`virQEMUSaveHeader` and the data area after it): read, checked
//! and its embedded domain XML rewritten in place. The memory stream after it is never touched.
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::vm::{VmError, io};

/// libvirt's save file header (`virQEMUSaveHeader`, qemu_saveimage.h): magic, then six u32 in
/// host byte order (version, data_len, was_running, compressed, cookieOffset, 14 unused).
pub(in crate::vm) const SAVE_MAGIC: &[u8; 16] = b"LibvirtQemudSave";
pub(in crate::vm) const HEADER_LEN: u64 = 16 + 4 * 19;
/// The header word naming how the memory stream is compressed (0: not at all).
pub(in crate::vm) const COMPRESSION: usize = 3;

/// Replaces the XML embedded in a libvirt save file. libvirt writes `[header][XML][cookie]
/// [64 KiB of zeros]` and keeps the cookie's offset in the header (`virQEMUSaveDataWrite`), so a
/// longer XML moves the cookie into the slack, as its own XML edits do. The memory stream after
/// the data is untouched.
pub(in crate::vm) fn rewrite_save_xml(path: &Path, pristine: &[u8], xml: &str) -> Result<(), VmError> {
    let invalid = |why: String| VmError::Invalid(format!("{}: {why}", path.display()));
    let (mut h, data) = split_head(pristine).map_err(invalid)?;
    let data_len = data.len();
    let cookie_offset = word(&h, 4) as usize;
    let cookie: &[u8] = if cookie_offset == 0 {
        &[]
    } else {
        let rest = &data[cookie_offset..];
        let end = rest.iter().position(|b| *b == 0).ok_or_else(|| invalid("cookie without its end".into()))?;
        &rest[..=end]
    };
    if xml.contains('\0') || xml.len() + 1 + cookie.len() > data_len {
        return Err(invalid(format!("the new XML ({} bytes) does not fit in {data_len}", xml.len())));
    }
    let mut new = vec![0u8; data_len];
    new[..xml.len()].copy_from_slice(xml.as_bytes());
    let new_cookie_offset = if cookie.is_empty() { 0 } else { xml.len() + 1 };
    new[new_cookie_offset..new_cookie_offset + cookie.len()].copy_from_slice(cookie);
    set_word(&mut h, 4, new_cookie_offset as u32);
    let mut f = std::fs::OpenOptions::new().write(true).open(path).map_err(io("opening", path))?;
    f.seek(SeekFrom::Start(0)).map_err(io("seeking in", path))?;
    f.write_all(&h).map_err(io("writing", path))?;
    f.write_all(&new).map_err(io("writing", path))?;
    f.sync_data().map_err(io("syncing", path))
}

/// The i-th u32 of a save file header (after the magic), in host byte order.
pub(in crate::vm) fn word(h: &[u8], i: usize) -> u32 {
    u32::from_ne_bytes([h[16 + 4 * i], h[17 + 4 * i], h[18 + 4 * i], h[19 + 4 * i]])
}

/// Sets the i-th u32 of a save file header ([`word`]).
pub(in crate::vm) fn set_word(h: &mut [u8], i: usize, value: u32) {
    h[16 + 4 * i..20 + 4 * i].copy_from_slice(&value.to_ne_bytes());
}

/// A save file's header and data area (XML, cookie, slack), checked.
fn split_head(bytes: &[u8]) -> Result<([u8; HEADER_LEN as usize], &[u8]), String> {
    let at = HEADER_LEN as usize;
    if bytes.len() < at || &bytes[..16] != SAVE_MAGIC {
        return Err("not a complete libvirt save file".into());
    }
    let h: [u8; HEADER_LEN as usize] = bytes[..at].try_into().expect("the length was checked");
    let (version, data_len, cookie_offset) = (word(&h, 0), word(&h, 1) as usize, word(&h, 4) as usize);
    if version != 2 {
        return Err(format!("save file version {version}, not 2"));
    }
    if data_len > 16 << 20 || cookie_offset > data_len || bytes.len() < at + data_len {
        return Err("implausible header".into());
    }
    Ok((h, &bytes[at..at + data_len]))
}

/// The domain XML in a save file's header and data area (up to its NUL).
pub(in crate::vm) fn head_xml(head: &[u8]) -> Result<&str, String> {
    let (_, data) = split_head(head)?;
    let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
    std::str::from_utf8(&data[..end]).map_err(|_| "the saved domain XML is not UTF-8".into())
}

/// The header and data area of a save file, as they are now.
pub(in crate::vm) fn read_head(path: &Path) -> Result<Vec<u8>, VmError> {
    let mut f = std::fs::File::open(path).map_err(io("opening", path))?;
    let mut h = vec![0u8; HEADER_LEN as usize];
    f.read_exact(&mut h).map_err(io("reading the header of", path))?;
    if &h[..16] != SAVE_MAGIC {
        return Err(VmError::Invalid(format!("{} is not a complete libvirt save file", path.display())));
    }
    let mut data = vec![0u8; (word(&h, 1) as usize).min(16 << 20)];
    f.read_exact(&mut data).map_err(io("reading the XML of", path))?;
    h.extend_from_slice(&data);
    split_head(&h).map_err(VmError::Invalid)?;
    Ok(h)
}

/// A version 2 save file as libvirt lays it out, for tests: the header (`cookie_at`: the
/// cookie's offset in `data`, 0 for none), the data area `data` (XML, cookie, slack), then
/// QEMU's memory stream `stream`.
#[cfg(test)]
pub(in crate::vm) fn save_file_bytes(data: &[u8], cookie_at: u32, stream: &[u8]) -> Vec<u8> {
    let mut f = SAVE_MAGIC.to_vec();
    for w in [2u32, data.len() as u32, 1, 0, cookie_at].into_iter().chain([0; 14]) {
        f.extend_from_slice(&w.to_ne_bytes());
    }
    debug_assert_eq!(f.len(), HEADER_LEN as usize);
    f.extend_from_slice(data);
    f.extend_from_slice(stream);
    f
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A save file as libvirt lays it out: header, XML, cookie, 64 KiB (here: `slack`) zeros,
    /// then QEMU's memory stream.
    fn fake_save(dir: &Path, xml: &str, slack: usize, cookie: Option<&str>) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("state.save");
        let mut data = xml.as_bytes().to_vec();
        data.push(0);
        let cookie_offset = cookie.map(|_| data.len()).unwrap_or(0) as u32;
        if let Some(c) = cookie {
            data.extend_from_slice(c.as_bytes());
            data.push(0);
        }
        data.extend(std::iter::repeat_n(0u8, slack));
        std::fs::write(&p, save_file_bytes(&data, cookie_offset, b"QEVM-the-memory-stream")).unwrap();
        p
    }

    #[test]
    fn the_embedded_xml_is_replaced_the_cookie_moved_and_the_memory_stream_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = fake_save(dir.path(), "<domain><name>g</name></domain>", 64, Some("<cookie/>"));
        let before = std::fs::read(&p).unwrap();
        let head = read_head(&p).unwrap();
        let xml = "<domain><name>vmw-12</name><a-longer-one/></domain>";
        rewrite_save_xml(&p, &head, xml).unwrap();
        let after = std::fs::read(&p).unwrap();
        assert_eq!(before.len(), after.len());
        let at = HEADER_LEN as usize;
        assert_eq!(&before[..at - 4 * 15], &after[..at - 4 * 15], "magic, version, length, running, format kept");
        let cookie_offset = u32::from_ne_bytes(after[16 + 16..16 + 20].try_into().unwrap()) as usize;
        assert_eq!(cookie_offset, xml.len() + 1, "the cookie's new place is in the header");
        assert!(after[at..].starts_with(format!("{xml}\0<cookie/>\0").as_bytes()));
        assert!(after.ends_with(b"QEVM-the-memory-stream"), "the memory stream is untouched");
        // What libvirt reads back: the XML up to the cookie, then the cookie.
        assert_eq!(&after[at..at + cookie_offset - 1], xml.as_bytes());
        // Too large for the slack: refused, file unchanged.
        assert!(rewrite_save_xml(&p, &head, &format!("<domain>{}</domain>", "x".repeat(200))).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), after);
        // Every rewrite starts from the saved head, not from what the last one left.
        rewrite_save_xml(&p, &head, "<domain><name>vmw-13</name></domain>").unwrap();
        let again = std::fs::read(&p).unwrap();
        assert!(again[at..].starts_with(b"<domain><name>vmw-13</name></domain>\0<cookie/>\0"));
        // Without a cookie the XML may take the whole area.
        let q = fake_save(&dir.path().join("q"), "<d/>", 64, None);
        let qhead = read_head(&q).unwrap();
        rewrite_save_xml(&q, &qhead, "<domain>larger</domain>").unwrap();
        assert_eq!(u32::from_ne_bytes(std::fs::read(&q).unwrap()[32..36].try_into().unwrap()), 0);
        // Not a save file (or an incomplete one): refused.
        std::fs::write(&p, b"LibvirtQemudPart and more bytes than a header needs, more, more, more, more, more!").unwrap();
        assert!(read_head(&p).is_err());
        assert!(rewrite_save_xml(&p, b"LibvirtQemudPart", "<domain/>").is_err());
    }
}
