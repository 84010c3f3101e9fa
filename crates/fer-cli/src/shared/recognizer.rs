//! The flags that open a [`Recognizer`] (model, device, detection, cropping, batching), shared
//! by `fer predict` and `fer serve`.

use fer::{ModelSource, Recognizer, RecognizerOptions};

use crate::shared::device::DeviceArgs;
use crate::shared::values::batch_size;

/// Which model classifies, where, and how faces are found and cropped.
#[derive(clap::Args)]
pub struct RecognizerArgs {
    /// The model: builtin (the default), builtin:NAME, a run directory (its best.safetensors)
    /// or a .safetensors file inside one.
    #[arg(long, default_value = "builtin", value_parser = clap::value_parser!(ModelSource))]
    pub model: ModelSource,
    /// Images per forward pass (at least 1).
    #[arg(long, default_value_t = 64, value_parser = batch_size)]
    pub batch_size: usize,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Smallest face to find, in pixels (at least 20; below 40 detection is slower).
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(20..))]
    pub min_face: u32,
    /// Margin added around each detected face box before cropping, as a share of its side.
    #[arg(long, default_value_t = fer_detect::DEFAULT_MARGIN)]
    pub margin: f32,
    /// Crop each face as the detector boxes it, without turning a tilted face upright by its
    /// eyes (MTCNN's O-Net landmarks).
    #[arg(long)]
    pub no_upright: bool,
    /// Search for faces on a copy of each photo scaled down to this many pixels on its longer
    /// side (crops still come from the full photo); 0 searches at full size, which finds
    /// smaller faces in large photos (below about 40 x long side / this) but is much slower.
    #[arg(long, default_value_t = fer::DEFAULT_DETECTION_SIDE, value_name = "PIXELS")]
    pub detect_size: u32,
}

impl RecognizerArgs {
    /// How the recognizer detects, crops and batches (options checked when it is opened).
    pub fn options(&self) -> RecognizerOptions {
        RecognizerOptions {
            detector: fer_detect::DetectorOptions {
                min_face_size: self.min_face,
                max_image_side: (self.detect_size > 0).then_some(self.detect_size),
                ..fer_detect::DetectorOptions::default()
            },
            margin: self.margin,
            upright: !self.no_upright,
            batch_size: self.batch_size,
        }
    }

    /// The recognizer these flags describe.
    pub fn open(&self) -> anyhow::Result<Recognizer> {
        let device = self.device.open()?;
        Ok(Recognizer::open_on(&self.model, self.options(), device)?)
    }
}
