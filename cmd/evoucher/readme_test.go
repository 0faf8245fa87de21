package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestREADMECommands checks that every evoucher command line shown in the README names a
// real command and only flags it has, so the documentation cannot drift from the CLI.
func TestREADMECommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var code strings.Builder
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		code.WriteString(block[1])
	}
	text := strings.ReplaceAll(code.String(), "\\\n", " ")
	lines := regexp.MustCompile(`(?m)^\s*(?:EVOUCHER_[A-Z_]+=\S+\s+)*evoucher (.+)$`).FindAllStringSubmatch(text, -1)
	if len(lines) < 10 {
		t.Fatalf("found %d command lines in the README", len(lines))
	}
	for _, m := range lines {
		line := m[1]
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		args := splitShell(line)
		root := newRoot()
		root.InitDefaultCompletionCmd()
		cmd, rest, err := root.Find(args)
		if err != nil || cmd == root {
			t.Errorf("README shows an unknown command: evoucher %s", line)
			continue
		}
		if err := cmd.ParseFlags(rest); err != nil {
			t.Errorf("README: evoucher %s: %v", line, err)
		}
	}
}

// splitShell splits a command line on blanks, honouring single and double quotes.
func splitShell(s string) []string {
	var out []string
	var cur strings.Builder
	var quote rune
	in := false
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				out = append(out, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, cur.String())
	}
	return out
}
