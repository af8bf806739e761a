//! Converting samples between 8 and 16 bits, for stacks that mix depths when the
//! caller asks for one ([`OpenOptions::convert_depth`](crate::OpenOptions::convert_depth)).

use crate::Rows;

/// 8 to 16 bits: `v * 257`, which maps 0..=255 onto 0..=65535 exactly (0xab becomes 0xabab).
pub(crate) fn widen(rows: Rows<'_, u8>) -> Vec<u16> {
    rows.iter()
        .flat_map(|row| row.iter().map(|&v| u16::from(v) * 257))
        .collect()
}

/// 16 to 8 bits: `(v + 128) / 257`, the 8-bit level nearest `v / 257`; the
/// inverse of [`widen`] (`narrow(widen(v)) == v`).
pub(crate) fn narrow(rows: Rows<'_, u16>) -> Vec<u8> {
    rows.iter()
        .flat_map(|row| row.iter().map(|&v| ((u32::from(v) + 128) / 257) as u8))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widen_and_narrow_round_trip_and_round_to_nearest() {
        let all: Vec<u8> = (0..=255).collect();
        let wide = widen(Rows::from_contiguous(&all, 256, 1).unwrap());
        assert_eq!((wide[0], wide[1], wide[255]), (0, 257, 65535));
        assert_eq!(narrow(Rows::from_contiguous(&wide, 256, 1).unwrap()), all);
        let edges = [0u16, 128, 129, 385, 386, 65406, 65535];
        let narrowed = narrow(Rows::from_contiguous(&edges, 7, 1).unwrap());
        // Exact nearest: v / 257 rounded half up, computed in floating point.
        let nearest: Vec<u8> = edges
            .iter()
            .map(|&v| (f64::from(v) / 257.0 + 0.5).floor() as u8)
            .collect();
        assert_eq!(narrowed, nearest);
        assert_eq!(narrowed, [0, 0, 1, 1, 2, 254, 255]);
    }
}
