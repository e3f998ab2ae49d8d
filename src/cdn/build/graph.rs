//! The order files are finished in: a file's hash covers the hashed names it references, so
//! every file it references is finished first. Strongly connected components (Tarjan's
//! algorithm, iterative so a long chain of imports cannot overflow the stack) come out leaves
//! first; a component of more than one file, or a file that references itself, is a cycle.

/// The components of the graph `edges` (node -> nodes it references), each sorted, in an
/// order where every component comes after all the components it references.
pub(crate) fn components(edges: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let count = edges.len();
    let mut state = Tarjan {
        index: vec![UNSEEN; count],
        low: vec![0; count],
        on_stack: vec![false; count],
        stack: Vec::new(),
        calls: Vec::new(),
        next: 0,
    };
    let mut components = Vec::new();
    for root in 0..count {
        if state.index[root] != UNSEEN {
            continue;
        }
        state.enter(root);
        while let Some(&(node, followed)) = state.calls.last() {
            if let Some(&target) = edges[node].get(followed) {
                if let Some(call) = state.calls.last_mut() {
                    call.1 += 1;
                }
                if state.index[target] == UNSEEN {
                    state.enter(target);
                } else if state.on_stack[target] {
                    state.low[node] = state.low[node].min(state.index[target]);
                }
                continue;
            }
            state.calls.pop();
            if let Some(&(caller, _)) = state.calls.last() {
                state.low[caller] = state.low[caller].min(state.low[node]);
            }
            if state.low[node] == state.index[node] {
                let mut component = Vec::new();
                while let Some(member) = state.stack.pop() {
                    state.on_stack[member] = false;
                    component.push(member);
                    if member == node {
                        break;
                    }
                }
                component.sort_unstable();
                components.push(component);
            }
        }
    }
    components
}

const UNSEEN: usize = usize::MAX;

/// Tarjan's bookkeeping.
struct Tarjan {
    index: Vec<usize>,
    low: Vec<usize>,
    on_stack: Vec<bool>,
    stack: Vec<usize>,
    /// (node, how many of its edges were followed): the recursion of the textbook version.
    calls: Vec<(usize, usize)>,
    next: usize,
}

impl Tarjan {
    fn enter(&mut self, node: usize) {
        self.index[node] = self.next;
        self.low[node] = self.next;
        self.next += 1;
        self.stack.push(node);
        self.on_stack[node] = true;
        self.calls.push((node, 0));
    }
}

/// Whether `component` is a cycle: more than one file, or one that references itself.
pub(crate) fn is_cycle(edges: &[Vec<usize>], component: &[usize]) -> bool {
    match component {
        [single] => edges[*single].contains(single),
        _ => true,
    }
}

/// One cycle through the first member of a cyclic `component`, starting and ending there
/// (`a -> b -> a`): what an error shows, rather than every member of a tangle.
pub(crate) fn cycle_through_first(edges: &[Vec<usize>], component: &[usize]) -> Vec<usize> {
    let Some(&start) = component.first() else { return Vec::new() };
    // Breadth first inside the component, so the cycle shown is a shortest one.
    let mut parent: Vec<Option<usize>> = vec![None; edges.len()];
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &target in &edges[node] {
            if target == start {
                // Walk back from `node` to `start`, then read it forwards.
                let mut back = Vec::new();
                let mut at = node;
                while at != start {
                    back.push(at);
                    at = parent[at].unwrap_or(start);
                }
                let mut path = vec![start];
                path.extend(back.into_iter().rev());
                path.push(start);
                return path;
            }
            if component.binary_search(&target).is_ok() && parent[target].is_none() && target != start {
                parent[target] = Some(node);
                queue.push_back(target);
            }
        }
    }
    vec![start, start]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_come_out_leaves_first() {
        // 0 -> 1 -> 2, 0 -> 2
        let edges = vec![vec![1, 2], vec![2], vec![]];
        assert_eq!(components(&edges), [vec![2], vec![1], vec![0]]);
    }

    #[test]
    fn a_cycle_is_one_component_and_is_named_in_order() {
        // 0 -> 1 -> 2 -> 0, 3 -> 0
        let edges = vec![vec![1], vec![2], vec![0], vec![0]];
        let found = components(&edges);
        assert_eq!(found, [vec![0, 1, 2], vec![3]]);
        assert!(is_cycle(&edges, &found[0]) && !is_cycle(&edges, &found[1]));
        assert_eq!(cycle_through_first(&edges, &found[0]), [0, 1, 2, 0]);
    }

    #[test]
    fn a_file_that_references_itself_is_a_cycle() {
        let edges = vec![vec![0]];
        assert!(is_cycle(&edges, &[0]));
        assert_eq!(cycle_through_first(&edges, &[0]), [0, 0]);
    }
}
