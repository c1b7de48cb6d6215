package ort

// SessionConfigEntry returns the value of onnxruntime's session config entry
// key in the options o makes, and whether it is set.
func SessionConfigEntry(o SessionOptions, key string) (string, bool, error) {
	options, err := o.ortOptions()
	if err != nil {
		return "", false, err
	}
	defer options.Destroy()
	ok, err := options.HasSessionConfigEntry(key)
	if err != nil || !ok {
		return "", false, err
	}
	v, err := options.GetSessionConfigEntry(key)
	return v, true, err
}
