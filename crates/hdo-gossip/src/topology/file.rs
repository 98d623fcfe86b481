//! A graph read from an edge list: one `i j` pair of 0-based node indices per line.

use super::Graph;
use crate::error::GossipError;
use std::path::Path;

/// Reads `path`: blank lines and `#` comments are skipped; every other line is two node
/// indices below `n` separated by whitespace. Any other line is an error naming the file and
/// line.
pub(super) fn graph(path: &Path, n: usize) -> Result<Graph, GossipError> {
    let text = std::fs::read_to_string(path).map_err(|e| GossipError::File {
        path: path.into(),
        line: 0,
        problem: e.to_string(),
    })?;
    parse(&text, n).map_err(|(line, problem)| GossipError::File {
        path: path.into(),
        line,
        problem,
    })
}

/// The edges of `text`, or the 1-based line and what is wrong with it.
pub(crate) fn parse(text: &str, n: usize) -> Result<Graph, (usize, String)> {
    let mut edges = Vec::new();
    for (k, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [a, b] = fields.as_slice() else {
            return Err((k + 1, format!("expected two node indices, found `{line}`")));
        };
        let index = |s: &str| -> Result<usize, (usize, String)> {
            let i: usize = s.parse().map_err(|_| (k + 1, format!("`{s}` is not a node index")))?;
            if i >= n {
                return Err((k + 1, format!("node {i} does not exist: the population has {n}")));
            }
            Ok(i)
        };
        let (a, b) = (index(a)?, index(b)?);
        if a == b {
            return Err((k + 1, format!("self-loop {a} {a}")));
        }
        edges.push((a, b));
    }
    Ok(Graph::from_edges(n, edges))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_an_edge_list_and_names_bad_lines() {
        let g = parse("# a path\n0 1\n1 2 # middle\n\n2 3\n", 4).expect("graph");
        assert_eq!(g.edges(), 3);
        assert!(g.is_connected());
        for (text, line, word) in [
            ("0 1\n1\n", 2, "two node indices"),
            ("0 x\n", 1, "`x`"),
            ("0 9\n", 1, "does not exist"),
            ("0 -1\n", 1, "`-1`"),
            ("2 2\n", 1, "self-loop"),
            ("0 1 2\n", 1, "two node indices"),
        ] {
            let (l, problem) = parse(text, 4).expect_err(text);
            assert_eq!(l, line, "{text}");
            assert!(problem.contains(word), "{text}: {problem}");
        }
    }

    #[test]
    fn a_missing_file_or_disconnected_list_is_an_error() {
        let e = graph(Path::new("/nonexistent/edges.txt"), 3).expect_err("missing");
        assert!(e.to_string().contains("/nonexistent/edges.txt"), "{e}");
        let dir = std::env::temp_dir().join(format!("hdo-edges-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("e.txt");
        std::fs::write(&path, "0 1\n2 3\n").expect("write");
        let spec = super::super::GraphSpec {
            kind: super::super::TopologyKind::File,
            p: 0.0,
            edges_file: Some(path),
            weights: super::super::Weights::Metropolis,
            redraw: false,
        };
        let e = Graph::build(&spec, 4, 0).expect_err("disconnected");
        assert!(e.to_string().contains("not connected"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
