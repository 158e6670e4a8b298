"""Smart contracts (device rules): a small rule language, its compiler, bytecode, metered VM and engine.

    compile_rule(source, filename) -> CompiledRule    rule text -> bytecode (RuleError at line:col)
    load(bytecode) -> Executable                      validate deployed bytes (BytecodeError)
    execute(exe, state, event, slot, host) -> Effects run the rules an event triggers
    disassemble(program, names=None) -> str           human-readable listing
"""
from blockiot.chain.contracts.bytecode import Program, decode_program, encode_program
from blockiot.chain.contracts.compiler import CompiledRule, compile_rule
from blockiot.chain.contracts.disasm import disassemble
from blockiot.chain.contracts.engine import Effects, SlotTick, TxEvent, apply_writes, execute, initial_state
from blockiot.chain.contracts.errors import BytecodeError, ContractError, RuleError, RuleSyntaxError, RuleTypeError
from blockiot.chain.contracts.vm import ContractHost, DeviceCommand, Executable, Limits, Transfer, load, prepare

__all__ = [
    "BytecodeError", "CompiledRule", "ContractError", "ContractHost", "DeviceCommand", "Effects", "Executable",
    "Limits", "Program", "RuleError", "RuleSyntaxError", "RuleTypeError", "SlotTick", "Transfer", "TxEvent",
    "apply_writes", "compile_rule", "decode_program", "disassemble", "encode_program", "execute",
    "initial_state", "load", "prepare",
]
