import Foundation
import ParleyCore

/// Copying to the terminal's clipboard with OSC 52, which works over ssh and through tmux (with
/// `set-clipboard on`). Only Parley writes the sequence, with the text base64-encoded inside it, so
/// nothing in the copied text can end the sequence or start another; a model's own escape sequences
/// are removed by the sanitizer before they are ever shown or stored.
public enum Clipboard {
    /// Terminals cap OSC 52 (xterm and tmux near 100 KB of base64); longer text is refused with a
    /// pointer to /export rather than cut.
    public static let maxBytes = 74_000

    public static func osc52(_ text: String) -> String {
        "\u{1B}]52;c;" + Data(text.utf8).base64EncodedString() + "\u{07}"
    }

    /// Why a copy would not reach the clipboard here, when that can be told from the environment:
    /// VTE terminals (GNOME Terminal, Tilix…) and the Linux console ignore OSC 52; tmux passes it on
    /// only with `set-clipboard on` (`tmuxSetting` is what `tmux show -gv set-clipboard` said).
    public static func problem(environment: [String: String], tmuxSetting: String?) -> String? {
        if environment["TMUX"] != nil, let setting = tmuxSetting, setting != "on" {
            return "tmux's set-clipboard is \(setting), so tmux does not take the copy: `tmux set -g set-clipboard on`, or /export to a file"
        }
        if environment["TERM"] == "linux" {
            return "the Linux console has no clipboard for OSC 52; /export writes the conversation to a file"
        }
        if environment["VTE_VERSION"] != nil, environment["TMUX"] == nil {
            return "this terminal (VTE: GNOME Terminal, Tilix…) ignores OSC 52 copies; /export writes the conversation to a file"
        }
        return nil
    }
}

/// The fenced code blocks of a reply, numbered from 1 as the screen numbers them; an unterminated
/// last block (a stopped reply) counts too.
public enum CodeBlocks {
    public static func extract(_ text: String) -> [String] {
        var blocks: [String] = []
        var current: [Substring]?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            let trimmed = line.drop { $0 == " " }
            if trimmed.hasPrefix("```") || trimmed.hasPrefix("~~~") {
                if let lines = current {
                    blocks.append(lines.joined(separator: "\n"))
                    current = nil
                } else {
                    current = []
                }
            } else if current != nil {
                current!.append(line)
            }
        }
        if let lines = current { blocks.append(lines.joined(separator: "\n")) }
        return blocks
    }
}
