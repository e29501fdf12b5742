//! A linear pre-scan for deeply nested YAML flow collections (`[[[[…` or `{a: {a: …`).
//! The YAML parser's time grows with the square of the nesting (a 200 KB file of
//! brackets took 19 s to reject), and its own depth limit only applies after it has
//! parsed everything; sluice's schema needs five levels, so deeper is refused first.
//!
//! Brackets inside quoted scalars and comments do not count. The scan is deliberately
//! forgiving where it cannot be exact without a full YAML parser (block scalars,
//! plain scalars with quotes in them): then it counts fewer brackets, never more, so
//! a valid config is not refused and the parser still sees anything the scan missed.

/// Where (1-based line and column) flow nesting first goes deeper than `max`, if it does.
pub fn too_deep(text: &str, max: usize) -> Option<(usize, usize)> {
    let bytes = text.as_bytes();
    let (mut line, mut line_start) = (1, 0);
    let mut depth = 0usize;
    let mut at = Position::default();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        i += 1;
        let node_start = if depth == 0 {
            at.block_node_start()
        } else {
            at.flow_node_start()
        };
        match b {
            b'\n' => {
                line += 1;
                line_start = i;
                at = Position::default();
                continue;
            }
            b' ' | b'\t' | b'\r' => {}
            b'#' if at.after_space() => {
                // A comment runs to the end of the line.
                while bytes.get(i).is_some_and(|&c| c != b'\n') {
                    i += 1;
                }
                continue;
            }
            b'\'' | b'"' if node_start => {
                i = skip_quoted(bytes, i, b, &mut line, &mut line_start);
            }
            b'[' | b'{' if depth > 0 || node_start => {
                depth += 1;
                if depth > max {
                    let column = text.get(line_start..i - 1).map_or(0, |t| t.chars().count());
                    return Some((line, column + 1));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        at.push(b);
    }
    None
}

/// What precedes the current byte on its line, enough to tell whether a node may
/// start there: elsewhere `'`, `"`, `#` and `[` are part of a plain scalar (`don't`,
/// `a#b`, `/a[1]`).
#[derive(Default)]
struct Position {
    prev: Option<u8>,
    /// The first and last byte of the last run of non-blank bytes, and its length.
    token: Option<(u8, u8, usize)>,
}

impl Position {
    fn push(&mut self, b: u8) {
        if !matches!(b, b' ' | b'\t' | b'\r') {
            self.token = match (self.after_space(), self.token) {
                (false, Some((first, _, len))) => Some((first, b, len + 1)),
                _ => Some((b, b, 1)),
            };
        }
        self.prev = Some(b);
    }

    fn after_space(&self) -> bool {
        matches!(self.prev, None | Some(b' ' | b'\t' | b'\r'))
    }

    /// Block context: at the line's first token, or after `key:`, `-`, `?`, `---`,
    /// an anchor (`&a`) or a tag (`!!seq`).
    fn block_node_start(&self) -> bool {
        match self.token {
            None => true,
            Some((first, last, len)) => {
                self.after_space()
                    && (last == b':'
                        || (first == b'-' && last == b'-')
                        || (first == b'?' && len == 1)
                        || first == b'&'
                        || first == b'!')
            }
        }
    }

    /// Flow context: after a blank or an indicator (`"k":"v"` is JSON-style YAML).
    fn flow_node_start(&self) -> bool {
        self.after_space() || matches!(self.prev, Some(b'[' | b'{' | b',' | b':'))
    }
}

/// Skips a quoted scalar whose opening `quote` was just read; returns the index after
/// the closing one (or the end). Single quotes escape themselves (`''`), double quotes
/// use backslashes. Quoted scalars may span lines.
fn skip_quoted(
    bytes: &[u8],
    mut i: usize,
    quote: u8,
    line: &mut usize,
    line_start: &mut usize,
) -> usize {
    while let Some(&c) = bytes.get(i) {
        i += 1;
        match c {
            b'\n' => {
                *line += 1;
                *line_start = i;
            }
            b'\\' if quote == b'"' => {
                if bytes.get(i) == Some(&b'\n') {
                    *line += 1;
                    *line_start = i + 1;
                }
                i += 1;
            }
            c if c == quote => {
                if quote == b'\'' && bytes.get(i) == Some(&b'\'') {
                    i += 1;
                } else {
                    return i;
                }
            }
            _ => {}
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::too_deep;

    #[test]
    fn counts_flow_collections_and_names_the_line() {
        assert_eq!(too_deep("a: [[[]]]", 3), None);
        assert_eq!(too_deep("a: [[[[]]]]", 3), Some((1, 7)));
        assert_eq!(too_deep("a: 1\nb: {x: [\n  {y: [1]}]}", 3), Some((3, 7)));
        assert_eq!(
            too_deep("- [\n- [\n- [\n- [", 3),
            Some((4, 3)),
            "unclosed counts too"
        );
        assert_eq!(
            too_deep("a: ['x\n  y', [[[]]]]", 3),
            Some((2, 9)),
            "lines in quotes count"
        );
        // Siblings do not add up.
        assert_eq!(too_deep(&"[[[]]], ".repeat(1000), 3), None);
    }

    #[test]
    fn brackets_in_quotes_comments_and_plain_scalars_do_not_count() {
        let deep = "[[[[";
        for text in [
            format!("a: '{deep}'"),
            format!("a: 'it''s {deep}'"),
            format!("a: \"{deep}\""),
            format!("a: \"say \\\"{deep}\\\"\""),
            format!("a: [\"x\\\\\", '{deep}']"),
            format!("a: 'multi\n  line {deep}'"),
            format!("a: 1 # {deep}"),
            format!("# {deep}\na: 1"),
            format!("a: /path{deep}"),
            format!("a: don't {deep}"),
            format!("a: it 's {deep}'"),
            format!("a: x- {deep}"),
            format!("- [don't, {{a: b}}] {deep}"),
            format!("a: b#{deep}c"),
            format!("a: {{\"k\":\"{deep}\"}}"),
        ] {
            assert_eq!(too_deep(&text, 3), None, "{text}");
        }
        // A '#' inside a plain scalar is not a comment: the brackets after it count.
        assert_eq!(too_deep("a: [x#y, [[[]]]]", 3), Some((1, 12)));
        // Anchors, tags and document starts do not hide a flow collection.
        assert_eq!(too_deep("a: &x [[[[]]]]", 3), Some((1, 10)));
        assert_eq!(too_deep("a: !!seq [[[[]]]]", 3), Some((1, 13)));
        assert_eq!(too_deep("--- [[[[]]]]", 3), Some((1, 8)));
        assert_eq!(too_deep("? [[[[]]]]", 3), Some((1, 6)));
        // Quotes are skipped, and what follows them is counted again.
        assert_eq!(too_deep("a: ['it''s', \"\\\"\", [[[]]]]", 3), Some((1, 22)));
    }
}
