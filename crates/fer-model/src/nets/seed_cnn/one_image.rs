//! The seed CNN's inference of one image (batch-1 latency): its layers handed to
//! [`cpu::one_image`](crate::cpu::one_image), which spreads each over every thread. conv1
//! (5x5, no padding) runs directly on the image; conv2..conv5 (3x3, padding 1) by Winograd,
//! their transformed weights cached in the network's [`Workspace`].

use super::params::{FC_HIDDEN, SeedParams, fc_inputs, geometry, pool_after};
use crate::cpu::one_image::{self, Conv, Dense};
use crate::cpu::workspace::Workspace;
use crate::head::NUM_CLASSES;

/// The raw scores (7) of one image `x` (48 x 48).
pub(crate) fn forward(ws: &Workspace, p: &SeedParams<&[f32]>, x: &[f32]) -> Vec<f32> {
    let (shapes, pools) = geometry(1);
    let convs: Vec<Conv> = shapes
        .iter()
        .zip(&p.convs)
        .enumerate()
        .map(|(layer, (&shape, params))| Conv {
            shape,
            weight: params.weight,
            scale: None,
            bias: params.bias,
            slope: params.slope,
            pool: pool_after(layer).map(|i| pools[i]),
        })
        .collect();
    let slope = Some(p.fc_slope[0]);
    let dense = [
        Dense {
            weight: p.fc1.weight,
            bias: p.fc1.bias,
            inputs: fc_inputs(),
            outputs: FC_HIDDEN,
            slope,
        },
        Dense {
            weight: p.fc2.weight,
            bias: p.fc2.bias,
            inputs: FC_HIDDEN,
            outputs: FC_HIDDEN,
            slope,
        },
        Dense {
            weight: p.fc3.weight,
            bias: p.fc3.bias,
            inputs: FC_HIDDEN,
            outputs: NUM_CLASSES,
            slope: None,
        },
    ];
    one_image::forward(ws, &convs, &dense, x)
}
