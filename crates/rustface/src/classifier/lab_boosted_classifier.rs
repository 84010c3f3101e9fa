// This file is part of the open-source port of SeetaFace engine, which originally includes three modules:
//      SeetaFace Detection, SeetaFace Alignment, and SeetaFace Identification.
//
// This file is part of the SeetaFace Detection module, containing codes implementing the face detection method described in the following paper:
//
//      Funnel-structured cascade for multi-view face detection with alignment awareness,
//      Shuzhe Wu, Meina Kan, Zhenliang He, Shiguang Shan, Xilin Chen.
//      In Neurocomputing (under review)
//
// Copyright (C) 2016, Visual Information Processing and Learning (VIPL) group,
// Institute of Computing Technology, Chinese Academy of Sciences, Beijing, China.
//
// As an open-source face recognition engine: you can redistribute SeetaFace source codes
// and/or modify it under the terms of the BSD 2-Clause License.
//
// You should have received a copy of the BSD 2-Clause License along with the software.
// If not, see < https://opensource.org/licenses/BSD-2-Clause>.

use super::score::Score;
use crate::feat::LabBoostedFeatureMap;
use crate::Rectangle;

#[derive(Clone)]
pub struct LabBoostedClassifier {
    features: Vec<(i32, i32)>,
    base_classifiers: Vec<BaseClassifier>,
    /// Every base classifier's weights, [`LAB_CODES`] apiece, one after the other: one lookup
    /// instead of two. Empty when a base classifier has fewer weights than there are codes
    /// (no SeetaFace model does), and then [`LabBoostedClassifier::classify`] reads each base
    /// classifier's own.
    weights_by_code: Vec<f32>,
}

/// The LAB feature values (one byte).
const LAB_CODES: usize = 256;

#[derive(Clone)]
struct BaseClassifier {
    weights: Vec<f32>,
    thresh: f32,
}

impl LabBoostedClassifier {
    #[inline]
    pub fn new() -> Self {
        LabBoostedClassifier {
            features: Vec::new(),
            base_classifiers: Vec::new(),
            weights_by_code: Vec::new(),
        }
    }

    #[inline]
    pub fn add_feature(&mut self, x: i32, y: i32) {
        self.features.push((x, y));
    }

    #[inline]
    pub fn add_base_classifier(&mut self, weights: Vec<f32>, thresh: f32) {
        let complete = self.weights_by_code.len() == self.base_classifiers.len() * LAB_CODES;
        if complete && weights.len() >= LAB_CODES {
            self.weights_by_code
                .extend_from_slice(&weights[..LAB_CODES]);
        } else {
            self.weights_by_code = Vec::new();
        }
        self.base_classifiers
            .push(BaseClassifier { weights, thresh })
    }
}

const K_FEAT_GROUP_SIZE: usize = 10;
const K_STDDEV_THRESH: f64 = 10.0;

impl LabBoostedClassifier {
    /// Upstream's cascade: the score summed in the same order with the same early exits,
    /// each window's codes read at one offset from its corner, and the weights from
    /// [`LabBoostedClassifier::weights_by_code`] when every base classifier has one per code.
    pub fn classify(&self, feature_map: &LabBoostedFeatureMap, roi: Rectangle) -> Score {
        if self.weights_by_code.len() == self.base_classifiers.len() * LAB_CODES {
            self.cascade(feature_map, roi, |i, code| {
                self.weights_by_code[i * LAB_CODES + code]
            })
        } else {
            self.cascade(feature_map, roi, |i, code| {
                self.base_classifiers[i].weights[code]
            })
        }
    }

    /// The cascade over `roi` with `weight(base classifier, code)`.
    #[inline(always)]
    fn cascade(
        &self,
        feature_map: &LabBoostedFeatureMap,
        roi: Rectangle,
        weight: impl Fn(usize, usize) -> f32,
    ) -> Score {
        let (codes, width) = feature_map.codes();
        let width = width as i32;
        let corner = roi.y() * width + roi.x();
        let mut positive = true;
        let mut score = 0.0;

        let mut i = 0;
        while positive && i < self.base_classifiers.len() {
            for _ in 0..K_FEAT_GROUP_SIZE {
                let (offset_x, offset_y) = self.features[i];
                let code = codes[(corner + offset_y * width + offset_x) as usize];
                score += weight(i, usize::from(code));
                i += 1;
            }
            positive = score >= self.base_classifiers[i - 1].thresh;
        }
        positive = positive && (feature_map.get_std_dev(roi) > K_STDDEV_THRESH);

        Score { positive, score }
    }

    /// Upstream 0.1.7's `classify`, verbatim, for the tests.
    #[cfg(test)]
    fn upstream_classify(&self, feature_map: &LabBoostedFeatureMap, roi: Rectangle) -> Score {
        let mut positive = true;
        let mut score = 0.0;

        let mut i = 0;
        while positive && i < self.base_classifiers.len() {
            for _ in 0..K_FEAT_GROUP_SIZE {
                let (offset_x, offset_y) = self.features[i];
                let feature_val = feature_map.get_feature_val(offset_x, offset_y, roi);
                score += self.base_classifiers[i].weights[feature_val as usize];
                i += 1;
            }
            positive = score >= self.base_classifiers[i - 1].thresh;
        }
        positive = positive && (feature_map.get_std_dev(roi) > K_STDDEV_THRESH);

        Score { positive, score }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feat::FeatureMap;
    use crate::ImageData;

    #[test]
    fn scores_are_upstreams() {
        let mut seed = 0xdead_beef_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut classifier = LabBoostedClassifier::new();
        for _ in 0..40 {
            classifier.add_feature((next() % 31) as i32, (next() % 31) as i32);
            let weights = (0..LAB_CODES)
                .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
                .collect();
            classifier.add_base_classifier(weights, -0.5);
        }
        assert_eq!(classifier.weights_by_code.len(), 40 * LAB_CODES);
        let (width, height) = (97, 61);
        let pixels: Vec<u8> = (0..width * height).map(|_| (next() >> 56) as u8).collect();
        let mut map = LabBoostedFeatureMap::new();
        map.compute(&ImageData::new(&pixels, width, height));
        let mut positives = 0;
        for y in (0..=height - 40).step_by(3) {
            for x in (0..=width - 40).step_by(3) {
                let roi = Rectangle::new(x as i32, y as i32, 40, 40);
                let ours = classifier.classify(&map, roi);
                let theirs = classifier.upstream_classify(&map, roi);
                assert_eq!(
                    ours.score.to_bits(),
                    theirs.score.to_bits(),
                    "window at {x},{y}"
                );
                assert_eq!(ours.positive, theirs.positive, "window at {x},{y}");
                positives += usize::from(ours.positive);
            }
        }
        assert!(
            positives > 0,
            "no window passed the cascade: the test compares too little"
        );
    }
}
