/// Near misses in names people type: task labels, config keys (issue 12).
public enum DidYouMean {
    /// Edit distance counting a swap of two neighbouring letters as one edit (the commonest slip:
    /// `gtae` for `gate`), case-insensitive.
    public static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a.lowercased().unicodeScalars), b = Array(b.lowercased().unicodeScalars)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var before = [Int](repeating: 0, count: b.count + 1)
        var prev = Array(0...b.count), cur = [Int](repeating: 0, count: b.count + 1)
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { cur[j] = min(cur[j], before[j - 2] + 1) }
            }
            before = prev
            swap(&prev, &cur)
        }
        return prev[b.count]
    }

    /// The candidate closest to `name` when it is close enough to be a slip of the keyboard
    /// (at most 2 edits, and fewer than a third of the name), else nil.
    public static func suggestion(for name: String, among candidates: some Sequence<String>) -> String? {
        var best: (String, Int)?
        for c in candidates where c != name {
            let d = distance(name, c)
            if d <= 2, d * 3 <= max(name.count, c.count), d < (best?.1 ?? .max) { best = (c, d) }
        }
        return best?.0
    }
}
