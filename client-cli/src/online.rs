//! Who is online, as the server gives it: page after page, for `parley
//! who` and the chat's `/who`.

/// Pages asked for at most: a server holds at most 4 Mi ids and a page
/// holds many, so only a server that never ends its list gets this far.
const MAX_PAGES: u32 = 100_000;

/// The walk through the online list: when to ask for the next page.
pub struct Pages {
    pages: u32,
    ids: usize,
    max_ids: usize,
}

impl Pages {
    /// A walk that stops once it has `max_ids` ids.
    pub fn up_to(max_ids: usize) -> Pages {
        Pages {
            pages: 0,
            ids: 0,
            max_ids,
        }
    }

    /// Count a page of `ids` ids whose next page starts at `next` (0: it
    /// was the last); the cursor to ask for next, or `None` when done.
    pub fn after(&mut self, next: u32, ids: usize) -> Option<u32> {
        self.pages += 1;
        self.ids += ids;
        (next != 0 && self.pages < MAX_PAGES && self.ids < self.max_ids).then_some(next)
    }
}

/// The `/who` line: every id up to a screenful, then a count.
pub fn line(list: &[String]) -> String {
    const SHOWN: usize = 200;
    let mut line = format!(
        "* online ({}): {}",
        list.len(),
        list[..list.len().min(SHOWN)].join(" ")
    );
    if list.len() > SHOWN {
        line.push_str(&format!(
            " ... and {} more (`parley who` lists them all)",
            list.len() - SHOWN
        ));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_walk_ends_with_the_list_or_at_a_bound() {
        let mut p = Pages::up_to(10);
        assert_eq!(p.after(7, 4), Some(7));
        assert_eq!(p.after(0, 4), None, "the last page");
        let mut p = Pages::up_to(10);
        assert_eq!(p.after(7, 10), None, "enough ids");
        let mut p = Pages::up_to(usize::MAX);
        assert!((1..MAX_PAGES).all(|_| p.after(3, 0) == Some(3)));
        assert_eq!(p.after(3, 0), None, "a list that never ends");
    }
}
