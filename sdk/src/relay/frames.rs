//! The body that carries several images in one request or response
//! (`application/vnd.hydrogen.images`): each image as a 4-byte big-endian
//! length followed by that many bytes, back to back, nothing else. It is what
//! `tokio_util`'s `LengthDelimitedCodec` reads with its default settings, so
//! a server can parse it while it streams and refuse an oversized image from
//! its length alone.

/// The content type of a framed images body.
pub const CONTENT_TYPE: &str = "application/vnd.hydrogen.images";

/// Why a framed body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("the body ends inside image {index}: {missing} more bytes expected")]
    Truncated { index: usize, missing: usize },
}

/// `images` as one framed body.
pub fn encode(images: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(images.iter().map(|i| i.len() + 4).sum());
    for image in images {
        let len = u32::try_from(image.len()).expect("an image under 4 GiB");
        body.extend_from_slice(&len.to_be_bytes());
        body.extend_from_slice(image);
    }
    body
}

/// The images of a framed body.
pub fn decode(mut body: &[u8]) -> Result<Vec<Vec<u8>>, FrameError> {
    let mut images = Vec::new();
    while !body.is_empty() {
        let index = images.len();
        let Some((len, rest)) = body.split_first_chunk::<4>() else {
            return Err(FrameError::Truncated {
                index,
                missing: 4 - body.len(),
            });
        };
        let len = u32::from_be_bytes(*len) as usize;
        if rest.len() < len {
            return Err(FrameError::Truncated {
                index,
                missing: len - rest.len(),
            });
        }
        images.push(rest[..len].to_vec());
        body = &rest[len..];
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let images = vec![b"first".to_vec(), Vec::new(), vec![7; 1000]];
        let body = encode(&images);
        assert_eq!(&body[..9], b"\0\0\0\x05first");
        assert_eq!(decode(&body).unwrap(), images);
        assert_eq!(decode(&[]).unwrap(), Vec::<Vec<u8>>::new());
    }

    #[test]
    fn a_cut_body_is_refused() {
        let body = encode(&[b"first".to_vec(), b"second".to_vec()]);
        assert_eq!(
            decode(&body[..body.len() - 2]),
            Err(FrameError::Truncated {
                index: 1,
                missing: 2
            })
        );
        assert_eq!(
            decode(&body[..11]),
            Err(FrameError::Truncated {
                index: 1,
                missing: 2
            })
        );
    }
}
