# `make help`: the Makefile's targets grouped under its `##@ Section` lines, then the variables
# documented with `##% NAME  text` lines. A section may appear more than once in the file; its
# targets are listed together, sections in the order they first appear.
# Colour only when asked (-v color=1: the Makefile passes it when stdout is a terminal).
BEGIN {
    section = "Other"
    bold = color ? "\033[1m" : ""
    cyan = color ? "\033[36m" : ""
    reset = color ? "\033[0m" : ""
}
/^##@ / {
    section = substr($0, 5)
    if (!(section in seen)) { seen[section] = 1; order[++sections] = section }
    next
}
/^##% / {
    line = substr($0, 5)
    name = line; sub(/ .*/, "", name)
    text = line; sub(/^[^ ]+ +/, "", text)
    variables[++nvariables] = sprintf("  %s%-17s%s %s", cyan, name, reset, text)
    next
}
/^[a-zA-Z0-9_-]+:.*## / {
    target = $0; sub(/:.*/, "", target)
    text = $0; sub(/^[^#]*## /, "", text)
    if (!(section in seen)) { seen[section] = 1; order[++sections] = section }
    entries[section] = entries[section] sprintf("  %s%-17s%s %s\n", cyan, target, reset, text)
}
END {
    print "Usage: make <target> [NAME=value ...]"
    for (i = 1; i <= sections; i++) {
        if (entries[order[i]] == "") continue
        printf "\n%s%s%s\n%s", bold, order[i], reset, entries[order[i]]
    }
    if (nvariables) {
        printf "\n%sVariables%s (defaults in brackets)\n", bold, reset
        for (i = 1; i <= nvariables; i++) print variables[i]
    }
}
