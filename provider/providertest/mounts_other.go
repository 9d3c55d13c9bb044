//go:build !linux

package providertest

func mountsUnder(string) ([]string, error) { return nil, nil }
