/// The one function through which every value reaches a shell script.
///
/// Single quotes make everything literal to POSIX shells — `$(...)`, backticks, `;`, newlines —
/// and a single quote inside is written as `'\''`.
public func shellQuote(_ value: String) -> String {
    if !value.isEmpty, value.unicodeScalars.allSatisfy({ shellSafe.contains($0) }) { return value }
    return "'" + value.replacingOccurrences(of: "'", with: "'\\''") + "'"
}

private let shellSafe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%".unicodeScalars)
