package integration

// AfterCreate sets StackOptions.afterCreate for a test.
func AfterCreate(o *StackOptions, f func(service string, hostAddrs []string)) { o.afterCreate = f }
