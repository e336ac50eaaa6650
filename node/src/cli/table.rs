//! Aligned text tables for the control commands: columns as wide as their
//! widest cell, cells separated by two spaces, trailing spaces trimmed.

/// Column widths, fitted to a header and some rows.
pub(super) struct Table {
    widths: Vec<usize>,
}

impl Table {
    /// Widths that fit `header` and every row of `rows`.
    pub(super) fn fit<'a>(
        header: &[&str],
        rows: impl IntoIterator<Item = &'a Vec<String>>,
    ) -> Table {
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in rows {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.chars().count());
            }
        }
        Table { widths }
    }

    /// One line of `cells`, padded to the widths (a wider cell pushes the
    /// rest of its line right).
    pub(super) fn line<S: AsRef<str>>(&self, cells: &[S]) -> String {
        let padded: Vec<String> = cells
            .iter()
            .zip(&self.widths)
            .map(|(cell, width)| format!("{:<width$}", cell.as_ref()))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    }
}

/// The whole table: the header line, then one line per row.
pub(super) fn table(header: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let rows: Vec<Vec<String>> = rows.collect();
    let fitted = Table::fit(header, &rows);
    let mut out = fitted.line(header);
    for row in &rows {
        out.push_str(&fitted.line(row));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_table_aligns_columns() {
        let rows = vec![
            vec!["10.0.0.0/24".to_owned(), "ban".to_owned()],
            vec!["2001:db8::1".to_owned(), "allow".to_owned()],
        ];
        let text = table(&["KEY", "KIND"], rows.into_iter());
        assert_eq!(text, "KEY          KIND\n10.0.0.0/24  ban\n2001:db8::1  allow\n");
    }
}
