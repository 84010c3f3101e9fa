//! The in-memory dataset: one contiguous pixel buffer plus labels, splits and source rows.

use crate::{Emotion, Error, IMAGE_PIXELS, Result, Split};

/// FER images with their labels, splits and source row numbers.
///
/// Pixels live in one contiguous buffer of `len() * 2304` bytes, row-major 48x48 per image,
/// so a batch can be gathered without chasing pointers. Image `i`'s pixels are
/// `pixels()[i * 2304..(i + 1) * 2304]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dataset {
    pixels: Vec<u8>,
    labels: Vec<Emotion>,
    splits: Vec<Split>,
    rows: Vec<u32>,
}

/// One image of a [`Dataset`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample<'a> {
    /// Position in the dataset.
    pub index: usize,
    /// 0-based data row in the source file (row 0 is the line after the header), or the row
    /// number an image folder's file name carries (or, where names give none, its place in
    /// path order).
    pub row: u32,
    pub label: Emotion,
    pub split: Split,
    /// 2304 grey values, row-major.
    pub pixels: &'a [u8],
}

impl Dataset {
    /// Assembles a dataset from its columns, checking that their lengths agree.
    pub fn from_parts(
        pixels: Vec<u8>,
        labels: Vec<Emotion>,
        splits: Vec<Split>,
        rows: Vec<u32>,
    ) -> Result<Self> {
        let n = labels.len();
        if pixels.len() != n * IMAGE_PIXELS || splits.len() != n || rows.len() != n {
            return Err(Error::Inconsistent(format!(
                "{} pixel bytes, {} labels, {} splits, {} rows (expected {} bytes per image)",
                pixels.len(),
                n,
                splits.len(),
                rows.len(),
                IMAGE_PIXELS
            )));
        }
        Ok(Dataset {
            pixels,
            labels,
            splits,
            rows,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// All pixels, `len() * 2304` bytes.
    pub fn pixels(&self) -> &[u8] {
        &self.pixels
    }

    pub fn labels(&self) -> &[Emotion] {
        &self.labels
    }

    pub fn splits(&self) -> &[Split] {
        &self.splits
    }

    /// Source row of every image (see [`Sample::row`]).
    pub fn rows(&self) -> &[u32] {
        &self.rows
    }

    /// The 2304 pixels of image `index`. Panics if `index >= len()`.
    pub fn image(&self, index: usize) -> &[u8] {
        &self.pixels[index * IMAGE_PIXELS..(index + 1) * IMAGE_PIXELS]
    }

    /// Image `index` with its metadata. Panics if `index >= len()`.
    pub fn sample(&self, index: usize) -> Sample<'_> {
        Sample {
            index,
            row: self.rows[index],
            label: self.labels[index],
            split: self.splits[index],
            pixels: self.image(index),
        }
    }

    /// Every image in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Sample<'_>> + '_ {
        (0..self.len()).map(|i| self.sample(i))
    }

    /// Positions of the images in `split`, in dataset order.
    pub fn indices_of(&self, split: Split) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.splits[i] == split)
            .collect()
    }

    /// A borrowed view of one split (no pixel is copied).
    pub fn view(&self, split: Split) -> View<'_> {
        View {
            dataset: self,
            indices: self.indices_of(split),
        }
    }

    /// A borrowed view of the whole dataset.
    pub fn view_all(&self) -> View<'_> {
        View {
            dataset: self,
            indices: (0..self.len()).collect(),
        }
    }

    /// A borrowed view of arbitrary positions, in the given order.
    pub fn view_of(&self, indices: Vec<usize>) -> Result<View<'_>> {
        if let Some(bad) = indices.iter().find(|&&i| i >= self.len()) {
            return Err(Error::Inconsistent(format!(
                "index {bad} out of range for {} images",
                self.len()
            )));
        }
        Ok(View {
            dataset: self,
            indices,
        })
    }

    /// An owned copy of the images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Result<Dataset> {
        Ok(self.view_of(indices.to_vec())?.to_dataset())
    }

    /// Number of images per class over the whole dataset, indexed by label.
    pub fn class_counts(&self) -> [usize; Emotion::COUNT] {
        self.view_all().class_counts()
    }

    /// SHA-256 (hex) of the content: every image's label, split and pixels, in order. The
    /// same data read from a `.csv`, a `.csv.gz` or an exported image folder has the same
    /// fingerprint; a run records its training data's, so that figures measured on other
    /// data are never stored as its own.
    pub fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};

        let mut hash = Sha256::new();
        hash.update((self.len() as u64).to_le_bytes());
        hash.update(self.labels.iter().map(|e| e.label()).collect::<Vec<u8>>());
        hash.update(self.splits.iter().map(|s| *s as u8).collect::<Vec<u8>>());
        hash.update(&self.pixels);
        hash.finalize()
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    /// Which splits occur, in dataset order (Training, PublicTest, PrivateTest).
    pub fn present_splits(&self) -> Vec<Split> {
        Split::ALL
            .into_iter()
            .filter(|s| self.splits.contains(s))
            .collect()
    }
}

/// A borrowed selection of a [`Dataset`]'s images (for example one split).
#[derive(Debug, Clone)]
pub struct View<'a> {
    dataset: &'a Dataset,
    indices: Vec<usize>,
}

impl<'a> View<'a> {
    /// Number of images in the view.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The dataset the view borrows from.
    pub fn dataset(&self) -> &'a Dataset {
        self.dataset
    }

    /// Positions in the underlying dataset.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }

    /// Pixels of the `k`-th image of the view. Panics if `k >= len()`.
    pub fn image(&self, k: usize) -> &'a [u8] {
        self.dataset.image(self.indices[k])
    }

    /// Label of the `k`-th image of the view.
    pub fn label(&self, k: usize) -> Emotion {
        self.dataset.labels[self.indices[k]]
    }

    /// The `k`-th image with its metadata (its `index` is the dataset position).
    pub fn sample(&self, k: usize) -> Sample<'a> {
        self.dataset.sample(self.indices[k])
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = Sample<'a>> + '_ {
        self.indices.iter().map(|&i| self.dataset.sample(i))
    }

    /// Labels of the view's images, in view order.
    pub fn labels(&self) -> Vec<Emotion> {
        self.indices
            .iter()
            .map(|&i| self.dataset.labels[i])
            .collect()
    }

    /// Number of images per class, indexed by label.
    pub fn class_counts(&self) -> [usize; Emotion::COUNT] {
        let mut counts = [0; Emotion::COUNT];
        for &i in &self.indices {
            counts[self.dataset.labels[i].index()] += 1;
        }
        counts
    }

    /// An owned copy of the view.
    pub fn to_dataset(&self) -> Dataset {
        let mut pixels = Vec::with_capacity(self.len() * IMAGE_PIXELS);
        for &i in &self.indices {
            pixels.extend_from_slice(self.dataset.image(i));
        }
        let pick = |i: &usize| *i;
        Dataset {
            pixels,
            labels: self
                .indices
                .iter()
                .map(pick)
                .map(|i| self.dataset.labels[i])
                .collect(),
            splits: self
                .indices
                .iter()
                .map(pick)
                .map(|i| self.dataset.splits[i])
                .collect(),
            rows: self
                .indices
                .iter()
                .map(pick)
                .map(|i| self.dataset.rows[i])
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Dataset {
        let n = 5;
        let pixels = (0..n).flat_map(|i| vec![i as u8; IMAGE_PIXELS]).collect();
        let labels = vec![
            Emotion::Angry,
            Emotion::Happy,
            Emotion::Happy,
            Emotion::Sad,
            Emotion::Fear,
        ];
        let splits = vec![
            Split::Training,
            Split::PublicTest,
            Split::Training,
            Split::PrivateTest,
            Split::Training,
        ];
        Dataset::from_parts(pixels, labels, splits, vec![10, 11, 12, 13, 14]).unwrap()
    }

    #[test]
    fn the_fingerprint_follows_content_only() {
        let data = tiny();
        let same = Dataset::from_parts(
            data.pixels().to_vec(),
            data.labels().to_vec(),
            data.splits().to_vec(),
            data.rows().iter().map(|r| r + 100).collect(),
        )
        .unwrap();
        assert_eq!(data.fingerprint(), same.fingerprint());
        assert_eq!(data.fingerprint().len(), 64);
        let mut pixels = data.pixels().to_vec();
        pixels[IMAGE_PIXELS + 7] ^= 1;
        let changed = Dataset::from_parts(
            pixels,
            data.labels().to_vec(),
            data.splits().to_vec(),
            data.rows().to_vec(),
        )
        .unwrap();
        assert_ne!(data.fingerprint(), changed.fingerprint());
        let mut splits = data.splits().to_vec();
        splits[0] = if splits[0] == Split::Training {
            Split::PublicTest
        } else {
            Split::Training
        };
        let moved = Dataset::from_parts(
            data.pixels().to_vec(),
            data.labels().to_vec(),
            splits,
            data.rows().to_vec(),
        )
        .unwrap();
        assert_ne!(data.fingerprint(), moved.fingerprint());
    }

    #[test]
    fn views_select_their_split_without_copying() {
        let data = tiny();
        let train = data.view(Split::Training);
        assert_eq!(train.indices(), &[0, 2, 4]);
        assert_eq!(train.image(1)[0], 2);
        assert_eq!(train.label(2), Emotion::Fear);
        assert_eq!(train.sample(1).row, 12);
        assert!(std::ptr::eq(
            train.image(0).as_ptr(),
            data.image(0).as_ptr()
        ));
        assert_eq!(train.class_counts(), [1, 0, 1, 1, 0, 0, 0]);
        assert_eq!(data.present_splits(), Split::ALL.to_vec());
    }

    #[test]
    fn subsets_copy_in_the_given_order_and_check_bounds() {
        let data = tiny();
        let sub = data.subset(&[3, 0]).unwrap();
        assert_eq!(sub.len(), 2);
        assert_eq!(sub.image(0)[0], 3);
        assert_eq!(sub.labels(), &[Emotion::Sad, Emotion::Angry]);
        assert_eq!(sub.rows(), &[13, 10]);
        let err = data.subset(&[5]).unwrap_err();
        assert!(
            err.to_string()
                .contains("index 5 out of range for 5 images"),
            "{err}"
        );
    }

    #[test]
    fn from_parts_rejects_mismatched_columns() {
        let err = Dataset::from_parts(vec![0; IMAGE_PIXELS], vec![], vec![], vec![]).unwrap_err();
        assert!(matches!(err, Error::Inconsistent(_)));
    }
}
