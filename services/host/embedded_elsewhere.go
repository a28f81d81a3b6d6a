//go:build mitosis_group

package host

const embedsStore = false

func startEmbedded(string) (embeddedStore, error) { return nil, errNoEmbeddedStore }
