import Foundation
@testable import ParleyTUI

/// A state as a user would have it after typing `prompt` and seeing `reply` stream in.
func conversation(width: Int = 60, height: Int = 20, turns: Int, replyLines: Int = 3) -> ChatState {
    var state = ChatState(width: width, height: height, model: "local:smollm2")
    _ = reduce(&state, .resize(width: width, height: height))
    for turn in 0..<turns {
        type(&state, "question \(turn)")
        _ = reduce(&state, .input(.key(.enter)))
        let reply = (0..<replyLines).map { "answer \(turn) line \($0)" }.joined(separator: "\n")
        _ = reduce(&state, .engine(.delta(reply)))
        _ = reduce(&state, .engine(.spend(turn: "$0.00", session: "$0.00", today: "$0.00", warn: false)))
        _ = reduce(&state, .engine(.finished(tokensPerSecond: 100)))
    }
    return state
}

func type(_ state: inout ChatState, _ text: String) {
    for character in text { _ = reduce(&state, .input(.key(.character(character)))) }
}

func screen(_ state: ChatState) -> [String] { Renderer.render(state).grid.lines }

/// `turns` turns whose prompts and replies the runtime reported as saved (`u0`/`r0`, `u1`/`r1`…).
func recordedTurns(_ turns: Int) -> ChatState {
    var state = conversation(turns: 0)
    for turn in 0..<turns {
        type(&state, "question \(turn)")
        _ = reduce(&state, .input(.key(.enter)))
        _ = reduce(&state, .turnRecorded(user: "u\(turn)", reply: "r\(turn)"))
        _ = reduce(&state, .engine(.delta("answer \(turn)")))
        _ = reduce(&state, .engine(.finished(tokensPerSecond: nil)))
    }
    return state
}
