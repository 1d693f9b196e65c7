// SPDX-License-Identifier: GPL-2.0

//! Serving one mapping from several windows: which window serves which
//! pages of a range, when no single window holds all of it.

/// Part of a range served by one window: `pages` pages, from byte `at` of
/// the window `window`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece<K> {
    pub window: K,
    pub at: u64,
    pub pages: u64,
}

/// Splits the byte range `[start, end)` (page aligned, `page` bytes a page)
/// among windows, at most `N` of them, each chosen to reach furthest:
/// `furthest(pos)` names the window that holds the page at `pos` and reaches
/// furthest past it, as (window, its first byte, its end). Returns the
/// pieces in file order, or `None` if a page is held by no window or more
/// than `N` windows would be needed.
pub fn cover<K: Copy, const N: usize>(
    start: i64,
    end: i64,
    page: u64,
    mut furthest: impl FnMut(i64) -> Option<(K, i64, i64)>,
) -> Option<[Option<Piece<K>>; N]> {
    let mut pieces = [None; N];
    let mut pos = start;
    if page == 0 || end <= start {
        return None;
    }
    for piece in pieces.iter_mut() {
        let (window, w_start, w_end) = furthest(pos)?;
        // The window must hold the page at `pos`.
        if w_start > pos || w_end < pos.saturating_add(page as i64) {
            return None;
        }
        let upto = w_end.min(end);
        *piece = Some(Piece {
            window,
            at: (pos - w_start) as u64,
            pages: (upto - pos) as u64 / page,
        });
        pos = upto;
        if pos >= end {
            return Some(pieces);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 4096;

    /// Windows as (first byte, end), named by their index.
    fn furthest_of(ws: &[(i64, i64)]) -> impl FnMut(i64) -> Option<(usize, i64, i64)> + '_ {
        move |pos| {
            ws.iter()
                .enumerate()
                .filter(|(_, w)| w.0 <= pos && pos + P as i64 <= w.1)
                .max_by_key(|(_, w)| w.1)
                .map(|(i, w)| (i, w.0, w.1))
        }
    }

    fn pages(n: i64) -> i64 {
        n * P as i64
    }

    #[test]
    fn two_adjacent_windows_serve_the_seam() {
        let ws = [(0, pages(4)), (pages(4), pages(8))];
        let got = cover::<_, 8>(pages(2), pages(6), P, furthest_of(&ws)).unwrap();
        assert_eq!(
            got[0],
            Some(Piece {
                window: 0,
                at: 2 * P,
                pages: 2
            })
        );
        assert_eq!(
            got[1],
            Some(Piece {
                window: 1,
                at: 0,
                pages: 2
            })
        );
        assert_eq!(got[2], None);
    }

    #[test]
    fn overlapping_windows_are_entered_where_the_last_ends() {
        let ws = [(0, pages(4)), (pages(2), pages(10))];
        let got = cover::<_, 8>(pages(1), pages(9), P, furthest_of(&ws)).unwrap();
        // From page 1, window 1 does not hold it: window 0 serves pages 1-3,
        // window 1 pages 4-8 from its byte 2 pages in.
        assert_eq!(
            got[0],
            Some(Piece {
                window: 0,
                at: P,
                pages: 3
            })
        );
        assert_eq!(
            got[1],
            Some(Piece {
                window: 1,
                at: 2 * P,
                pages: 5
            })
        );
        let total: u64 = got.iter().flatten().map(|p| p.pages).sum();
        assert_eq!(8, total);
    }

    #[test]
    fn a_gap_or_too_many_windows_is_not_covered() {
        let gap = [(0, pages(2)), (pages(3), pages(6))];
        assert!(cover::<_, 8>(0, pages(6), P, furthest_of(&gap)).is_none());
        let ones: Vec<(i64, i64)> = (0..9).map(|i| (pages(i), pages(i + 1))).collect();
        assert!(cover::<_, 8>(0, pages(9), P, furthest_of(&ones)).is_none());
        assert!(cover::<_, 9>(0, pages(9), P, furthest_of(&ones)).is_some());
    }

    #[test]
    fn a_window_that_does_not_hold_the_page_is_refused() {
        // A buggy lookup that returns a window ending inside the page.
        let bad = |_pos: i64| Some((0usize, 0i64, 100i64));
        assert!(cover::<_, 8>(0, pages(1), P, bad).is_none());
    }
}
