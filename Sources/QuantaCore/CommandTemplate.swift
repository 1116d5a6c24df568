import Foundation

/// A per-task command line with placeholders, for the command executor.
///
/// `{input:TYPE}` / `{output:TYPE}`: the paths of that dataset type (outputs: temporary paths that
/// run-quantum renames afterwards); `{inputs}` / `{outputs}`: all of them; `{dataId}`: `visit=1, detector=2`;
/// `{dim:NAME}`: one dimension value; `{task}`: the task label. Every substituted value is shell-quoted.
public struct CommandTemplate: Sendable, Equatable {
    public enum Part: Sendable, Equatable {
        case literal(String)
        case input(String), output(String), inputs, outputs, dataID, dimension(String), task
    }

    public let text: String
    public let parts: [Part]

    public init(_ text: String) throws {
        self.text = text
        var parts: [Part] = []
        var rest = Substring(text)
        while let open = rest.firstIndex(of: "{") {
            guard let close = rest[open...].firstIndex(of: "}") else {
                throw QuantaError(.invalidConfig, "command template '\(text)': '{' without '}'")
            }
            if open > rest.startIndex { parts.append(.literal(String(rest[..<open]))) }
            let key = String(rest[rest.index(after: open)..<close])
            switch key {
            case "inputs": parts.append(.inputs)
            case "outputs": parts.append(.outputs)
            case "dataId": parts.append(.dataID)
            case "task": parts.append(.task)
            case _ where key.hasPrefix("input:"): parts.append(.input(String(key.dropFirst(6))))
            case _ where key.hasPrefix("output:"): parts.append(.output(String(key.dropFirst(7))))
            case _ where key.hasPrefix("dim:"): parts.append(.dimension(String(key.dropFirst(4))))
            default:
                throw QuantaError(.invalidConfig, "command template '\(text)': unknown placeholder {\(key)}; use {input:TYPE} {output:TYPE} {inputs} {outputs} {dataId} {dim:NAME} {task}")
            }
            rest = rest[rest.index(after: close)...]
        }
        if !rest.isEmpty { parts.append(.literal(String(rest))) }
        self.parts = parts
    }

    /// Checks the dataset types and dimensions it names exist for this task.
    public func check(task: TaskNode, source: String) throws {
        for p in parts {
            switch p {
            case .input(let t) where !task.inputTypes.contains(t):
                throw QuantaError(.invalidConfig, "\(source): pipetask.\(task.label).command uses {input:\(t)} but the task reads \(task.inputTypes.joined(separator: ", "))")
            case .output(let t) where !task.outputTypes.contains(t):
                throw QuantaError(.invalidConfig, "\(source): pipetask.\(task.label).command uses {output:\(t)} but the task writes \(task.outputTypes.joined(separator: ", "))")
            case .dimension(let d) where !task.dimensions.contains(d):
                throw QuantaError(.invalidConfig, "\(source): pipetask.\(task.label).command uses {dim:\(d)} but the task's dimensions are \(task.dimensions.joined(separator: ", "))")
            default: continue
            }
        }
    }

    /// The shell command line; every value passes through `shellQuote`.
    public func render(task: String, dataID: DataID, inputs: [(type: String, path: String)],
                       outputs: [(type: String, path: String)]) -> String {
        func paths(_ list: [(type: String, path: String)]) -> String { list.map { shellQuote($0.path) }.joined(separator: " ") }
        return parts.map { p -> String in
            switch p {
            case .literal(let s): return s
            case .input(let t): return paths(inputs.filter { $0.type == t })
            case .output(let t): return paths(outputs.filter { $0.type == t })
            case .inputs: return paths(inputs)
            case .outputs: return paths(outputs)
            case .dataID: return shellQuote(dataID.description)
            case .dimension(let d): return shellQuote(dataID[d]?.description ?? "")
            case .task: return shellQuote(task)
            }
        }.joined()
    }
}
