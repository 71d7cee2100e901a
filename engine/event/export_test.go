package event

// EveryField is everyField for the package's external tests.
var EveryField = everyField
