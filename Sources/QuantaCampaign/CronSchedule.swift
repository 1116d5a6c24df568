import Foundation

/// A cron schedule, as crontab(5) writes it: five fields (minute, hour, day of month, month, day of
/// week) of `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, lists `a,b`, month and day names
/// (`jan`, `mon`), day of week 0 or 7 for Sunday; or `@hourly`, `@daily`/`@midnight`, `@weekly`,
/// `@monthly`, `@yearly`/`@annually`. As in cron, when both day fields are restricted a day
/// matching either one matches. Times are in the calendar's time zone (the machine's by default).
public struct CronSchedule: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    let minutes: Set<Int>, hours: Set<Int>, days: Set<Int>, months: Set<Int>, weekdays: Set<Int>
    let anyDay: Bool, anyWeekday: Bool

    public struct ParseError: Error, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    public init(_ text: String) throws {
        self.text = text
        let macros = ["@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
                      "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"]
        let expanded = macros[text.trimmingCharacters(in: .whitespaces).lowercased()] ?? text
        let fields = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else {
            throw ParseError(message: "'\(text)' is not a cron schedule: it needs five fields (minute hour day-of-month month day-of-week, e.g. '0 3 * * 1' for Mondays at 03:00) or @daily/@weekly/@monthly")
        }
        let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
        let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
        minutes = try Self.field(fields[0], "minute", 0...59, names: [:])
        hours = try Self.field(fields[1], "hour", 0...23, names: [:])
        days = try Self.field(fields[2], "day of month", 1...31, names: [:])
        months = try Self.field(fields[3], "month", 1...12,
                                names: Dictionary(uniqueKeysWithValues: monthNames.enumerated().map { ($1, $0 + 1) }))
        var w = try Self.field(fields[4], "day of week", 0...7, names: Dictionary(uniqueKeysWithValues: dayNames.enumerated().map { ($1, $0) }))
        if w.contains(7) { w.remove(7); w.insert(0) }
        weekdays = w
        anyDay = fields[2].hasPrefix("*")
        anyWeekday = fields[4].hasPrefix("*")
    }

    static func field(_ text: String, _ what: String, _ range: ClosedRange<Int>, names: [String: Int]) throws -> Set<Int> {
        func value(_ s: Substring) throws -> Int {
            if let n = Int(s), range.contains(n) { return n }
            if let n = names[s.lowercased()] { return n }
            throw ParseError(message: "'\(s)' is not a \(what) (\(range.lowerBound)-\(range.upperBound)\(names.isEmpty ? "" : " or a name"))")
        }
        var out = Set<Int>()
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2, !pieces[0].isEmpty else { throw ParseError(message: "'\(part)' is not a \(what) field") }
            var step = 1
            if pieces.count == 2 {
                guard let s = Int(pieces[1]), s > 0 else { throw ParseError(message: "'\(part)': the step after '/' must be a whole number above 0") }
                step = s
            }
            var lo = range.lowerBound, hi = range.upperBound
            if pieces[0] != "*" {
                let ends = pieces[0].split(separator: "-", omittingEmptySubsequences: false)
                guard ends.count <= 2 else { throw ParseError(message: "'\(part)' is not a \(what) field") }
                lo = try value(ends[0])
                hi = ends.count == 2 ? try value(ends[1]) : (pieces.count == 2 ? range.upperBound : lo)
                guard lo <= hi else { throw ParseError(message: "'\(part)': the range runs backwards") }
            }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return out
    }

    /// The first minute strictly after `date` that the schedule names (nil if none within 8 years,
    /// e.g. `0 0 31 2 *`).
    public func next(after date: Date, calendar: Calendar = Calendar(identifier: .gregorian)) -> Date? {
        let cal = calendar
        guard let start = cal.date(byAdding: .minute, value: 1, to: date),
              var day = cal.date(from: cal.dateComponents([.year, .month, .day], from: start)) else { return nil }
        let first = cal.dateComponents([.hour, .minute], from: start)
        var sameDay = true
        for _ in 0..<(366 * 8) {
            let c = cal.dateComponents([.month, .day, .weekday], from: day)
            let domOK = days.contains(c.day!), dowOK = weekdays.contains(c.weekday! - 1)
            let dayOK = anyDay && anyWeekday ? true : anyDay ? dowOK : anyWeekday ? domOK : (domOK || dowOK)
            if months.contains(c.month!) && dayOK {
                for h in hours.sorted() where !sameDay || h >= first.hour! {
                    for m in minutes.sorted() where !sameDay || h > first.hour! || m >= first.minute! {
                        if let t = cal.date(bySettingHour: h, minute: m, second: 0, of: day) { return t }
                    }
                }
            }
            sameDay = false
            guard let d = cal.date(byAdding: .day, value: 1, to: day) else { return nil }
            day = d
        }
        return nil
    }

    public var description: String { text }

    public static func == (a: CronSchedule, b: CronSchedule) -> Bool { a.text == b.text }
}
