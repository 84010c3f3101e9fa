//! Image augmentation for 48x48 grey FER faces, built on imageproc.
//!
//! Placeholder: the transforms (flip, rotation, crops, erasing, noise) and the seeded batch
//! pipeline arrive with the augmentation work. Depends on `fer-data` only.
