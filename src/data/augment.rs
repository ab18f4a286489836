//! Augmentation of image batches: random crops of a zero-padded image and horizontal
//! flips (torchvision's `RandomCrop(size, padding)` and `RandomHorizontalFlip`).

use crate::rng::Rng;

/// What to apply to each training image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Augment {
    /// Zero padding on each side before a crop back to the original size (0: no crop).
    pub crop_padding: usize,
    /// Mirror left-right with probability ½.
    pub flip: bool,
}

impl Augment {
    pub fn is_identity(&self) -> bool {
        self.crop_padding == 0 && !self.flip
    }

    /// Writes an augmented copy of `src` (`channels × h × w`) to `dst`, both that long
    /// (the dataset checks).
    pub(crate) fn apply(&self, src: &[f32], dst: &mut [f32], [c, h, w]: [usize; 3], rng: &mut Rng) {
        let p = self.crop_padding;
        // Offset of the crop window in the padded image, minus the padding.
        let (dy, dx) = if p > 0 {
            (
                rng.below(2 * p + 1) as isize - p as isize,
                rng.below(2 * p + 1) as isize - p as isize,
            )
        } else {
            (0, 0)
        };
        let flip = self.flip && rng.below(2) == 1;
        for ch in 0..c {
            for y in 0..h {
                let sy = y as isize + dy;
                for x in 0..w {
                    let sx_unflipped = x as isize + dx;
                    let sx = if flip {
                        w as isize - 1 - sx_unflipped
                    } else {
                        sx_unflipped
                    };
                    let inside = (0..h as isize).contains(&sy) && (0..w as isize).contains(&sx);
                    dst[(ch * h + y) * w + x] = if inside {
                        src[(ch * h + sy as usize) * w + sx as usize]
                    } else {
                        0.0
                    };
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flips_and_crops_keep_the_pixels() {
        let src: Vec<f32> = (0..6).map(|v| v as f32).collect();
        let mut dst = vec![0.0; 6];
        let mut rng = Rng::new(0);
        Augment::default().apply(&src, &mut dst, [1, 2, 3], &mut rng);
        assert_eq!(dst, src);
        let flip = Augment {
            crop_padding: 0,
            flip: true,
        };
        let mut seen_flip = false;
        for _ in 0..20 {
            flip.apply(&src, &mut dst, [1, 2, 3], &mut rng);
            seen_flip |= dst == [2.0, 1.0, 0.0, 5.0, 4.0, 3.0];
            assert!(dst == src || dst == [2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
        }
        assert!(seen_flip);
        let crop = Augment {
            crop_padding: 1,
            flip: false,
        };
        for _ in 0..20 {
            crop.apply(&src, &mut dst, [1, 2, 3], &mut rng);
            // Every value is a source pixel or padding.
            assert!(dst.iter().all(|v| src.contains(v)));
        }
    }
}
