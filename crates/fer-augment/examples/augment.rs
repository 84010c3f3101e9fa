//! Augments the first image of a FER2013 file eight times and writes a strip PNG:
//! `augment PATH OUT.png [PROFILE]` (profiles: none, seed, modern, robust, everything).

use fer_augment::{Pipeline, PipelineConfig};
use fer_data::{IMAGE_SIDE, LoadOptions, Split, load};
use image::GrayImage;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(out)) = (args.next(), args.next()) else {
        return Err("usage: augment PATH/TO/fer2013.csv[.gz] OUT.png [PROFILE]".into());
    };
    let profile = args.next().unwrap_or_else(|| "modern".into());
    let config = PipelineConfig::named(&profile).ok_or("unknown profile")?;
    let pipeline = Pipeline::new(config, 0)?;
    let data = load(&path, &LoadOptions::default())?.dataset;
    let first = data.view(Split::Training).sample(0);
    let side = IMAGE_SIDE as u32;
    let mut strip = GrayImage::new(side * 9, side);
    image::imageops::replace(
        &mut strip,
        &GrayImage::from_raw(side, side, first.pixels.to_vec()).ok_or("size")?,
        0,
        0,
    );
    for epoch in 0..8u32 {
        let pixels = pipeline.apply(first.pixels, u64::from(epoch), first.index as u64)?;
        let face = GrayImage::from_raw(side, side, pixels).ok_or("size")?;
        image::imageops::replace(&mut strip, &face, i64::from(side * (epoch + 1)), 0);
    }
    strip.save(&out)?;
    println!("wrote {out}");
    Ok(())
}
