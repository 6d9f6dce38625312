"""WDL's standard library as the editor shows it: each function's signature and one line on what it
does (after the WDL spec). Which functions a document may use comes from miniwdl's own standard
library for the document's version, so completion offers exactly what the type checker accepts."""

from __future__ import annotations

from functools import lru_cache
from typing import Dict, Tuple

from WDL import StdLib

# name -> (signature, description); names miniwdl's StdLib lacks for a version are never shown.
FUNCTIONS: Dict[str, Tuple[str, str]] = {
    "as_map": ("Map[P,Y] as_map(Array[Pair[P,Y]])", "Turns an array of pairs into a map (keys must be unique)."),
    "as_pairs": ("Array[Pair[P,Y]] as_pairs(Map[P,Y])", "Turns a map into an array of (key, value) pairs, in order."),
    "basename": ("String basename(File|String, [String suffix])", "The file name without its folder, optionally without a suffix."),
    "ceil": ("Int ceil(Float)", "The smallest integer not below the number."),
    "chunk": ("Array[Array[X]] chunk(Array[X], Int size)", "Splits an array into chunks of the given size."),
    "collect_by_key": ("Map[P,Array[Y]] collect_by_key(Array[Pair[P,Y]])", "Groups the pairs' values by key."),
    "contains": ("Boolean contains(Array[P], P)", "Whether the array holds the value."),
    "contains_key": ("Boolean contains_key(Map[P,Y], P)", "Whether the map has the key."),
    "cross": ("Array[Pair[X,Y]] cross(Array[X], Array[Y])", "Every pair of an element of the first array with one of the second."),
    "defined": ("Boolean defined(X?)", "Whether an optional value is set."),
    "find": ("String? find(String input, String pattern)", "The first match of a regular expression in the string, if any."),
    "flatten": ("Array[X] flatten(Array[Array[X]])", "Concatenates an array of arrays."),
    "floor": ("Int floor(Float)", "The largest integer not above the number."),
    "join_paths": ("File join_paths(File, String|Array[String])", "Joins path components onto a folder."),
    "keys": ("Array[P] keys(Map[P,Y]|Struct|Object)", "The keys of a map (or member names of a struct), in order."),
    "length": ("Int length(Array[X]|Map[X,Y]|String)", "The number of elements (or characters)."),
    "matches": ("Boolean matches(String input, String pattern)", "Whether the regular expression matches anywhere in the string."),
    "max": ("Int|Float max(Int|Float, Int|Float)", "The larger of two numbers."),
    "min": ("Int|Float min(Int|Float, Int|Float)", "The smaller of two numbers."),
    "prefix": ("Array[String] prefix(String, Array[P])", "Prepends the string to each element."),
    "quote": ("Array[String] quote(Array[P])", "Wraps each element in double quotes."),
    "range": ("Array[Int] range(Int)", "The integers 0 to n-1."),
    "read_boolean": ("Boolean read_boolean(File)", "Reads a file holding true or false."),
    "read_float": ("Float read_float(File)", "Reads a file holding one number."),
    "read_int": ("Int read_int(File)", "Reads a file holding one integer."),
    "read_json": ("Union read_json(File)", "Reads a JSON file into a WDL value."),
    "read_lines": ("Array[String] read_lines(File)", "Reads a file's lines."),
    "read_map": ("Map[String,String] read_map(File)", "Reads a two-column TSV file into a map."),
    "read_object": ("Object read_object(File)", "Reads a two-row TSV file (header and values) into an object."),
    "read_objects": ("Array[Object] read_objects(File)", "Reads a TSV file with a header row into objects."),
    "read_string": ("String read_string(File)", "Reads a whole file as a string (without its final newline)."),
    "read_tsv": ("Array[Array[String]] read_tsv(File, [Boolean header, Array[String] names])", "Reads a TSV file into rows of fields."),
    "round": ("Int round(Float)", "The nearest integer (halves round up)."),
    "select_all": ("Array[X] select_all(Array[X?])", "The set elements of an array of optionals."),
    "select_first": ("X select_first(Array[X?], [X default])", "The first set element of an array of optionals (fails if none)."),
    "sep": ("String sep(String separator, Array[P])", "Joins the elements with the separator."),
    "size": ("Float size(File|File?|Array[File?]|..., [String unit])", "Total size of files, in bytes or the given unit (KB, MiB, GB...)."),
    "squote": ("Array[String] squote(Array[P])", "Wraps each element in single quotes."),
    "stderr": ("File stderr()", "The task command's standard error (in a task's outputs)."),
    "stdout": ("File stdout()", "The task command's standard output (in a task's outputs)."),
    "sub": ("String sub(String input, String pattern, String replace)", "Replaces every match of a regular expression."),
    "suffix": ("Array[String] suffix(String, Array[P])", "Appends the string to each element."),
    "transpose": ("Array[Array[X]] transpose(Array[Array[X]])", "Swaps rows and columns of a rectangular array."),
    "unzip": ("Pair[Array[X],Array[Y]] unzip(Array[Pair[X,Y]])", "Splits an array of pairs into a pair of arrays."),
    "values": ("Array[Y] values(Map[P,Y])", "The values of a map, in order."),
    "write_json": ("File write_json(X)", "Writes a value as JSON to a new file."),
    "write_lines": ("File write_lines(Array[String])", "Writes each string as a line of a new file."),
    "write_map": ("File write_map(Map[String,String])", "Writes a map as a two-column TSV file."),
    "write_object": ("File write_object(Object)", "Writes an object as a two-row TSV file."),
    "write_objects": ("File write_objects(Array[Object])", "Writes objects as a TSV file with a header row."),
    "write_tsv": ("File write_tsv(Array[Array[String]], [Boolean header, Array[String] names])", "Writes rows of fields as a TSV file."),
    "zip": ("Array[Pair[X,Y]] zip(Array[X], Array[Y])", "Pairs the elements of two arrays of equal length, in order."),
}
_TASK_OUTPUT_ONLY = {"stdout", "stderr"}  # in miniwdl's TaskOutputs library, not the base one


@lru_cache(maxsize=None)
def available(wdl_version: str) -> Dict[str, Tuple[str, str]]:
    """The functions a document of this version may call: name -> (signature, description)."""
    try:
        stdlib = StdLib.Base(wdl_version)
    except Exception:  # an unknown version: miniwdl will say so; offer 1.0's
        stdlib = StdLib.Base("1.0")
    names = {n for n, f in vars(stdlib).items() if isinstance(f, StdLib.Function) and not n.startswith("_")}
    return {n: FUNCTIONS.get(n, (f"{n}(...)", "")) for n in sorted(names | _TASK_OUTPUT_ONLY)}
