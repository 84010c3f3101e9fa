//! The seed CNN described once: its geometry (five convolutions, three pools, three fully
//! connected layers) and its parameters by name. The candle forward, the fused training step
//! and the batch-1 path all read this description.

use fer_data::IMAGE_SIDE;

use crate::cpu::shape::{ConvShape, PoolKind, PoolShape};
use crate::head::NUM_CLASSES;

/// Features of the two hidden fully connected layers.
pub(crate) const FC_HIDDEN: usize = 1024;

/// PyTorch `state_dict` prefixes of each convolution and of the PReLU after it, as the
/// notebook's `nn.Sequential` layers number them (a `ZeroPad2d` before a conv shifts its index).
pub(crate) const CONV_NAMES: [(&str, &str); 5] = [
    ("layer1.0", "layer1.1"),
    ("layer2.1", "layer2.2"),
    ("layer3.0", "layer3.1"),
    ("layer4.1", "layer4.2"),
    ("layer5.1", "layer5.2"),
];

/// The five convolutions and three pools of the seed CNN at batch `n`, in network order:
/// conv1 (5x5) + PReLU, ZeroPad2d(2) + MaxPool(5, 2); conv2 and conv3 (3x3, padding 1) +
/// PReLU, AvgPool(3, 2); conv4 and conv5 (3x3, padding 1) + PReLU, ZeroPad2d(1) +
/// AvgPool(3, 2). A `ZeroPad2d(1)` right before a 3x3 convolution is its own padding 1.
pub(crate) fn geometry(n: usize) -> ([ConvShape; 5], [PoolShape; 3]) {
    let conv = |cin, side, cout, k, pad| ConvShape {
        batch: n,
        cin,
        h: side,
        w: side,
        cout,
        k,
        pad,
    };
    let convs = [
        conv(1, IMAGE_SIDE, 64, 5, 0), // 64 x 44 x 44
        conv(64, 22, 64, 3, 1),
        conv(64, 22, 128, 3, 1), // 128 x 22 x 22
        conv(128, 10, 128, 3, 1),
        conv(128, 10, 128, 3, 1), // 128 x 10 x 10
    ];
    let pool = |kind, c: &ConvShape, k, stride, pad| PoolShape {
        kind,
        planes: n * c.cout,
        h: c.out_h(),
        w: c.out_w(),
        k,
        stride,
        pad,
    };
    let pools = [
        pool(PoolKind::Max, &convs[0], 5, 2, 2), // 64 x 22 x 22
        pool(PoolKind::Avg, &convs[2], 3, 2, 0), // 128 x 10 x 10
        pool(PoolKind::Avg, &convs[4], 3, 2, 1), // 128 x 5 x 5
    ];
    (convs, pools)
}

/// The pool (index into [`geometry`]'s pools) that follows convolution `layer`, if any.
pub(crate) fn pool_after(layer: usize) -> Option<usize> {
    match layer {
        0 => Some(0),
        2 => Some(1),
        4 => Some(2),
        _ => None,
    }
}

/// Inputs of the first fully connected layer: the last pool's output per image (3200).
pub(crate) fn fc_inputs() -> usize {
    let (_, pools) = geometry(1);
    let last = pools[2];
    last.planes * last.out_h() * last.out_w()
}

/// A convolution's weight (cout, cin, k, k), bias and PReLU slope (one, shared).
#[derive(Debug, Clone)]
pub(crate) struct ConvParams<T> {
    pub weight: T,
    pub bias: T,
    pub slope: T,
}

/// A fully connected layer's weight (out, in) and bias.
#[derive(Debug, Clone)]
pub(crate) struct LinearParams<T> {
    pub weight: T,
    pub bias: T,
}

/// Every parameter of the seed CNN, by name: tensors, slices of their values, or gradients.
#[derive(Debug, Clone)]
pub(crate) struct SeedParams<T> {
    pub convs: [ConvParams<T>; 5],
    /// 3200 -> 1024.
    pub fc1: LinearParams<T>,
    /// The PReLU slope after fc1 and after fc2: one module in the notebook, used twice.
    pub fc_slope: T,
    /// 1024 -> 1024.
    pub fc2: LinearParams<T>,
    /// 1024 -> 7.
    pub fc3: LinearParams<T>,
}

impl<T> SeedParams<T> {
    /// The same parameters through `f`, which may fail.
    pub fn try_map<'a, U, E>(
        &'a self,
        mut f: impl FnMut(&'a T) -> Result<U, E>,
    ) -> Result<SeedParams<U>, E> {
        let mut convs = Vec::with_capacity(5);
        for c in &self.convs {
            convs.push(ConvParams {
                weight: f(&c.weight)?,
                bias: f(&c.bias)?,
                slope: f(&c.slope)?,
            });
        }
        let mut linear = |l: &'a LinearParams<T>| -> Result<LinearParams<U>, E> {
            Ok(LinearParams {
                weight: f(&l.weight)?,
                bias: f(&l.bias)?,
            })
        };
        let fc1 = linear(&self.fc1)?;
        let fc2 = linear(&self.fc2)?;
        let fc3 = linear(&self.fc3)?;
        Ok(SeedParams {
            convs: convs
                .try_into()
                .unwrap_or_else(|_| unreachable!("five convolutions")),
            fc1,
            fc_slope: f(&self.fc_slope)?,
            fc2,
            fc3,
        })
    }

    /// The same parameters through `f`.
    pub fn map<'a, U>(&'a self, mut f: impl FnMut(&'a T) -> U) -> SeedParams<U> {
        self.try_map(|t| Ok::<U, std::convert::Infallible>(f(t)))
            .unwrap_or_else(|never| match never {})
    }

    /// Every parameter, in one fixed order (the order of [`SeedParams::pairs`]).
    pub fn into_list(self) -> Vec<T> {
        let mut list = Vec::with_capacity(22);
        for c in self.convs {
            list.extend([c.weight, c.bias, c.slope]);
        }
        list.extend([self.fc1.weight, self.fc1.bias, self.fc_slope]);
        list.extend([
            self.fc2.weight,
            self.fc2.bias,
            self.fc3.weight,
            self.fc3.bias,
        ]);
        list
    }

    /// Each parameter of `self` beside the same parameter of `other`.
    pub fn pairs<U>(self, other: SeedParams<U>) -> impl Iterator<Item = (T, U)> {
        self.into_list().into_iter().zip(other.into_list())
    }
}

impl SeedParams<String> {
    /// The PyTorch `state_dict` name of every parameter.
    pub fn names() -> Self {
        let conv = |(conv, prelu): (&str, &str)| ConvParams {
            weight: format!("{conv}.weight"),
            bias: format!("{conv}.bias"),
            slope: format!("{prelu}.weight"),
        };
        let linear = |name: &str| LinearParams {
            weight: format!("{name}.weight"),
            bias: format!("{name}.bias"),
        };
        SeedParams {
            convs: CONV_NAMES.map(conv),
            fc1: linear("fc1"),
            fc_slope: "prelu.weight".to_string(),
            fc2: linear("fc2"),
            fc3: linear("fc3"),
        }
    }
}

impl SeedParams<usize> {
    /// The number of values of every parameter.
    pub fn sizes() -> Self {
        let (convs, _) = geometry(1);
        let conv = |s: &ConvShape| ConvParams {
            weight: s.cout * s.patch(),
            bias: s.cout,
            slope: 1,
        };
        let linear = |inputs: usize, outputs: usize| LinearParams {
            weight: outputs * inputs,
            bias: outputs,
        };
        SeedParams {
            convs: convs.each_ref().map(conv),
            fc1: linear(fc_inputs(), FC_HIDDEN),
            fc_slope: 1,
            fc2: linear(FC_HIDDEN, FC_HIDDEN),
            fc3: linear(FC_HIDDEN, NUM_CLASSES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The geometry chains: each layer's input is the previous layer's (pooled) output, and
    /// the last pool gives the notebook's 3200 features.
    #[test]
    fn each_layer_reads_what_the_previous_one_writes() {
        let (convs, pools) = geometry(3);
        let mut side = IMAGE_SIDE;
        let mut channels = 1;
        for (layer, conv) in convs.iter().enumerate() {
            assert_eq!(
                (conv.cin, conv.h, conv.w, conv.batch),
                (channels, side, side, 3)
            );
            (channels, side) = (conv.cout, conv.out_h());
            if let Some(p) = pool_after(layer) {
                let pool = pools[p];
                assert_eq!((pool.planes, pool.h, pool.w), (3 * channels, side, side));
                side = pool.out_h();
            }
        }
        assert_eq!(channels * side * side, 3200);
        assert_eq!(fc_inputs(), 3200);
    }

    /// 22 parameters in all, 4,742,221 values: conv 1,664 + 36,928 + 73,856 + 147,584 +
    /// 147,584, fc 3,277,824 + 1,049,600 + 7,175, five conv slopes and one shared fc slope.
    #[test]
    fn the_parameter_list_has_the_notebook_sizes() {
        let sizes = SeedParams::sizes().into_list();
        assert_eq!(sizes.len(), 22);
        assert_eq!(sizes.iter().sum::<usize>(), 4_742_221);
    }
}
