package processrt

// IsZombie lets the tests tell a process that runs from one that exited and awaits reaping,
// by the rule down itself uses.
var IsZombie = isZombie
