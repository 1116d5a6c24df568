import QuantaCommands

@main
struct Entrypoint {
    static func main() {
        QuantaCommand.main()
    }
}
