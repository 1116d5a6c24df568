/// The one function through which every value reaches a shell script.
///
/// Single quotes make everything literal to POSIX shells — `$(...)`, backticks, `;`, newlines —
/// and a single quote inside is written as `'\''`.
public func shellQuote(_ value: String) -> String {
    if !value.isEmpty, value.unicodeScalars.allSatisfy({ shellSafe.contains($0) }) { return value }
    return "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

private let shellSafe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%".unicodeScalars)

/// Words of a command-line fragment as a POSIX shell splits them, without expanding anything:
/// `extraQgraphOptions: "-c 'isr:doWrite=False' --skip-existing-in a,b"` becomes four words.
public enum ShellWords {
    public static func split(_ text: String, source: String) throws -> [String] {
        var words: [String] = [], word = "", inWord = false
        var it = text.makeIterator()
        while let c = it.next() {
            switch c {
            case " ", "\t", "\n":
                if inWord { words.append(word); word = ""; inWord = false }
            case "'":
                inWord = true
                var closed = false
                while let d = it.next() { if d == "'" { closed = true; break }; word.append(d) }
                if !closed { throw QuantaError(.invalidConfig, "\(source): a ' without its closing quote in \(text)") }
            case "\"":
                inWord = true
                var closed = false
                while let d = it.next() {
                    if d == "\"" { closed = true; break }
                    if d == "\\", let e = it.next() { word.append(e) } else { word.append(d) }
                }
                if !closed { throw QuantaError(.invalidConfig, "\(source): a \" without its closing quote in \(text)") }
            case "\\":
                inWord = true
                if let d = it.next() { word.append(d) }
            default:
                inWord = true
                word.append(c)
            }
        }
        if inWord { words.append(word) }
        return words
    }
}
