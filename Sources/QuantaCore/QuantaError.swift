import Foundation

/// An error a person can act on: names the file or thing, what is wrong, and the fix.
public struct QuantaError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        case invalidGraph, invalidConfig, planning, io, registry, execution, usage, scheduler
    }
    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}

extension QuantaError: LocalizedError {
    public var errorDescription: String? { message }
}
