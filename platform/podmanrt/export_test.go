package podmanrt

// AfterCreate makes r call f with a pod's name between its creation and its start.
func (r *Runtime) AfterCreate(f func(pod string)) { r.afterCreate = f }
