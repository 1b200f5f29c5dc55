"""The errors camscan reports to a person, each carrying the exit code the command line ends with.

    CamscanError            exit 2 unless a subclass says otherwise; the message is one line for a person
      UsageError            a command used wrongly (conflicting options, unknown method)
      InputError            a file or stream that cannot be used (unreadable, wrong format)
      RuleError             a fingerprint rule file refused at load (scanner.fingerprint.rules)
      PackError             a policy pack refused at load (scanner.policy.packs)
      ReportError           a report JSON that cannot be read (scanner.report.export)
      ScopeError            targets the scope guard refuses (scanner.scope)
      CaptureError          a capture from which nothing can be read (scanner.passive)
      LabError              the simulated lab cannot start or be reached (scanner.lab.control)
      CheckFailed           exit 1: a verification that ran and found a problem (rules, policy, integrity)

The command line catches CamscanError in one place (scanner.cli.app) and prints `error: <message>`.
"""

from __future__ import annotations


class CamscanError(Exception):
    """An error meant for the person running camscan: a clear one-line message and an exit code."""

    exit_code: int = 2


class UsageError(CamscanError):
    """The command was used wrongly."""


class InputError(CamscanError):
    """A file or stream camscan was given cannot be used."""


class CheckFailed(CamscanError):
    """A check ran and failed (a rule example, a pack example, an integrity digest): exit 1."""

    exit_code = 1
