package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// configFile is the name of the settings file inside the config directory.
const configFile = "config.json"

// applyConfig fills every flag the user did not set, first from EVOUCHER_<FLAG> in the
// environment, then from the config directory's config.json (keys are flag names). Flags win
// over the environment, which wins over the file, which wins over defaults.
func applyConfig(cmd *cobra.Command) error {
	dir := cmd.Flag("dir").Value.String()
	file := map[string]string{}
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &file); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(dir, configFile), err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil || f.Name == "dir" {
			return
		}
		env := "EVOUCHER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(env); ok {
			firstErr = setFlag(f, v, env)
			return
		}
		if f.Name == "database-url" {
			if v := os.Getenv("DATABASE_URL"); v != "" {
				firstErr = setFlag(f, v, "DATABASE_URL")
				return
			}
		}
		if v, ok := file[f.Name]; ok {
			firstErr = setFlag(f, v, configFile)
		}
	})
	return firstErr
}

func setFlag(f *pflag.Flag, v, from string) error {
	if err := f.Value.Set(v); err != nil {
		return fmt.Errorf("--%s from %s: %w", f.Name, from, err)
	}
	return nil
}

// writeConfig merges settings into the config directory's config.json and reports whether the
// file changed.
func writeConfig(dir string, settings map[string]string) (bool, error) {
	path := filepath.Join(dir, configFile)
	cur := map[string]string{}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &cur); err != nil {
			return false, fmt.Errorf("%s: %w", path, err)
		}
	}
	changed := false
	for k, v := range settings {
		if cur[k] != v {
			cur[k] = v
			changed = true
		}
	}
	if !changed {
		return false, nil
	}
	b, err := json.MarshalIndent(cur, "", "  ")
	if err != nil {
		return false, err
	}
	return true, os.WriteFile(path, append(b, '\n'), 0o600)
}
