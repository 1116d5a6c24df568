import Foundation

/// An error a person can act on: names the file or thing, what is wrong, and the fix.
public struct QuantaError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        case invalidGraph, invalidConfig, planning, io, registry, execution, usage, scheduler
    }
    public let code: Code
    public let message: String

    /// Passwords in URLs (`postgresql://user:secret@host`) never reach a message: redacted here,
    /// where every error is made.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = Redact.urls(message)
    }

    public var description: String { message }
}

extension QuantaError: LocalizedError {
    public var errorDescription: String? { message }
}

/// Secrets out of text people and logs see.
public enum Redact {
    /// `scheme://user:password@host…` → `scheme://user:***@host…`, every occurrence.
    public static func urls(_ text: String) -> String {
        guard text.contains("://") else { return text }
        var out = ""
        var rest = Substring(text)
        while let sep = rest.range(of: "://") {
            out += rest[..<sep.upperBound]
            rest = rest[sep.upperBound...]
            // The authority ends at the first '/', whitespace or quote; a password is between ':' and the last '@' in it.
            let end = rest.firstIndex { $0 == "/" || $0 == " " || $0 == "\n" || $0 == "'" || $0 == "\"" || $0 == "?" || $0 == "#" } ?? rest.endIndex
            let authority = rest[..<end]
            if let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") {
                out += authority[...colon] + "***" + authority[at...]
            } else {
                out += authority
            }
            rest = rest[end...]
        }
        return out + rest
    }
}
