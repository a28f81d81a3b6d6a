//go:build !mitosis_group || mitosis_catalog

// Part of the implementation: only the binaries that run catalog link it (bounded.Group.BuildTags).

package catalog

import (
	"fmt"

	"github.com/mitosis-dev/mitosis/shop/money"
)

// Seed returns the catalog a new shop starts with: a small outdoor and kitchen shop whose
// product IDs (sku-0001 ...) are stable, so that load tests, examples and documentation can
// name them. It is hand-written data, identical on every call and in every process.
func Seed() []Product {
	rows := []struct {
		name, description string
		cents, grams      int64
	}{
		{"Trailhead 2-Person Tent", "Freestanding three-season dome tent with two doors, two vestibules and a full-coverage rainfly.", 24900, 2150},
		{"Summit 20°F Down Sleeping Bag", "650-fill responsibly sourced down in a mummy cut, with a draft collar and a two-way zipper.", 27900, 1180},
		{"Basecamp Self-Inflating Sleeping Pad", "Open-cell foam core that inflates itself in minutes; R-value 4.2 for cold ground.", 8900, 980},
		{"Ridgeline 45L Backpack", "Top-loading pack with an adjustable torso, hip-belt pockets and a removable lid.", 17900, 1450},
		{"Featherlight Trekking Poles (pair)", "Three-section aluminium poles with cork grips, flick locks and carbide tips.", 7900, 520},
		{"Canyon Insulated Water Bottle 750 ml", "Double-wall stainless steel keeps drinks cold for 24 hours or hot for 12.", 3200, 390},
		{"Beacon 400 Lumen Headlamp", "USB-C rechargeable headlamp with a red night mode and a lockout switch for your pack.", 3900, 86},
		{"Pocket Canister Stove", "Folding canister stove that boils a litre of water in about three and a half minutes.", 4900, 98},
		{"Titanium Long Spork", "Long-handled spork that reaches the bottom of freeze-dried meal pouches without sticky knuckles.", 1200, 18},
		{"Hard-Anodized Cook Set", "Two pots, a frying pan and a strainer lid that nest together in a mesh stuff sack.", 6900, 740},
		{"Collapsible Silicone Bowl", "Food-grade silicone bowl that folds flat to 2 cm; dishwasher safe.", 1400, 110},
		{"Squeeze Water Filter", "Hollow-fibre filter that removes 99.99999% of bacteria and threads onto standard bottles.", 3900, 85},
		{"Lakeside Folding Camp Chair", "Aluminium-frame chair with a breathable mesh back and a cup holder; packs into its own bag.", 8900, 960},
		{"Ripstop Hammock with Tree Straps", "Parachute-nylon hammock rated to 180 kg, with tree-friendly straps and steel carabiners.", 6900, 570},
		{"Emergency Bivy Sack", "Reflective bivy that keeps 90% of body heat in and packs down to the size of an apple.", 2900, 108},
		{"Trail First Aid Kit", "Bandages, blister care, tweezers and a splint in a water-resistant pouch for two to four people.", 3400, 280},
		{"Merino Wool Hiking Socks", "Cushioned merino socks that stay warm when wet and do not hold odours.", 2400, 85},
		{"Stormfront Rain Shell Jacket", "Waterproof, breathable 2.5-layer shell with pit zips and a helmet-compatible hood.", 14900, 340},
		{"Grid Fleece Pullover", "Quarter-zip grid fleece that traps warmth and dries fast as a mid layer.", 6900, 390},
		{"Wide-Brim Sun Hat", "UPF 50 nylon hat with a chin strap and a mesh crown to let heat out.", 3500, 95},
		{"Scree Gaiters", "Low gaiters that keep gravel and snow out of trail runners and hiking boots.", 3900, 210},
		{"Bear-Resistant Food Canister", "Hard-sided canister that holds about five days of food and meets park regulations.", 8900, 1160},
		{"Ferro Rod Firestarter", "Ferrocerium rod and striker that throws hot sparks in wind and rain, for thousands of strikes.", 1500, 60},
		{"Folding Pruning Saw", "Locking 21 cm blade that cuts green and dry wood on the pull stroke.", 3400, 310},
		{"Bushcraft Fixed-Blade Knife", "Carbon steel Scandi-grind knife with a leather sheath and a spine that strikes a ferro rod.", 6900, 240},
		{"14-in-1 Multi-Tool", "Pliers, wire cutters, blades, screwdrivers and a bottle opener in one stainless steel tool.", 8900, 250},
		{"Reflective Paracord 30 m", "550-rated nylon cord with a reflective tracer for guylines and bear hangs.", 1200, 200},
		{"Glowhouse LED Lantern", "Dimmable 500-lumen lantern with a hanging hook that runs 100 hours on low.", 4500, 310},
		{"Solar Power Bank 10000 mAh", "Rugged power bank with a trickle-charge solar panel and two USB outputs.", 4900, 290},
		{"Roll-Top Dry Bag 20 L", "Welded-seam dry bag that keeps clothes and electronics dry on rivers and in downpours.", 2400, 150},
		{"Pre-Seasoned Cast Iron Skillet 10-inch", "Cast iron that goes from stovetop to oven to campfire and only gets better with use.", 3900, 2270},
		{"Enamelled Dutch Oven 5-quart", "Heavy enamelled cast iron pot for braises, stews and no-knead bread.", 7900, 5400},
		{"Forged Chef's Knife 8-inch", "Full-tang German steel chef's knife, hand-sharpened to a 15-degree edge.", 8900, 230},
		{"End-Grain Maple Cutting Board", "Thick end-grain maple board that is kind to knife edges, finished with food-safe oil.", 7400, 2600},
		{"Ceramic Pour-Over Coffee Dripper", "Cone dripper with spiral ribs for an even extraction; fits most mugs and carafes.", 2600, 350},
		{"Hand Burr Coffee Grinder", "Stainless steel conical burrs with 40 click settings from espresso to French press.", 5900, 520},
		{"Gooseneck Pour-Over Kettle", "Stovetop kettle with a precise gooseneck spout and a built-in thermometer.", 6900, 800},
		{"French Press 1 Litre", "Borosilicate glass press with a four-layer stainless filter for a clean cup.", 3900, 760},
		{"Speckled Enamel Camp Mug", "Classic 350 ml enamel mug that sits on the stove to keep coffee hot.", 1400, 180},
		{"Stainless Mixing Bowl Set of 3", "Nesting bowls of 1.5, 3 and 5 litres with non-slip bases and pouring lips.", 3200, 950},
		{"Silicone Spatula Set", "Three heat-resistant spatulas, safe to 260°C, moulded in one piece so nothing hides in seams.", 1800, 260},
		{"Digital Kitchen Scale", "Weighs up to 5 kg in 1 g steps, with a tare button and a pull-out display.", 2900, 480},
		{"Granite Mortar and Pestle", "Unpolished granite that grinds spices and pounds curry pastes with little effort.", 3400, 2900},
		{"Washed Linen Apron", "Cross-back linen apron with two deep pockets and a towel loop.", 3200, 280},
		{"Beeswax Food Wraps (set of 3)", "Reusable cotton wraps coated in beeswax and jojoba oil that replace cling film.", 1800, 70},
		{"Sourdough Starter Kit", "Dried heirloom starter, a glass jar, a banneton and a bench scraper to bake your first loaf.", 2900, 900},
		{"Magnetic Spice Tin Set", "Twelve airtight steel tins with clear lids and a wall plate that holds them in place.", 4200, 1100},
		{"Insulated Lunch Box", "Leak-proof lined lunch box that keeps food cold for six hours, with a shoulder strap.", 2900, 410},
		{"Rolling Cooler 45-quart", "Rotomoulded cooler with all-terrain wheels that keeps ice for five days.", 18900, 8600},
		{"Stovetop Percolator 9-cup", "Stainless steel percolator with a glass knob to watch the coffee brew, on stove or fire.", 4400, 900},
		{"Two-Burner Camp Griddle", "Pre-seasoned cast iron griddle that covers two burners for pancakes and smash burgers.", 5900, 2300},
		{"Ceramic Non-Stick Frying Pan 11-inch", "PFAS-free ceramic coating on an aluminium body with a stay-cool handle.", 4900, 1050},
		{"Salt and Pepper Mill Set", "Beech wood mills with adjustable ceramic grinders that never rust.", 3900, 640},
		{"Serrated Bread Knife", "Long scalloped blade that cuts crusty loaves and ripe tomatoes without crushing them.", 4400, 190},
		{"Fresh Herb Keeper", "Glass herb keeper with a water reservoir that keeps cut herbs fresh for up to two weeks.", 2400, 450},
		{"Waterproof Picnic Blanket", "Soft fleece blanket with a waterproof backing that rolls up with a carry strap.", 3900, 820},
		{"Vacuum Food Jar 500 ml", "Keeps soup hot for 7 hours or yoghurt cold for 9, with a folding spoon in the lid.", 3200, 360},
		{"Bamboo Travel Utensil Set", "Fork, knife, spoon, chopsticks and straw in a roll-up canvas pouch.", 1600, 120},
		{"Quick-Dry Trail Cap", "Lightweight running cap with a sweat-wicking band and a packable brim.", 2800, 60},
		{"Microfibre Camp Towel", "Ultralight towel that absorbs four times its weight and dries in an hour.", 1900, 160},
	}
	products := make([]Product, len(rows))
	for i, r := range rows {
		products[i] = Product{
			ID:          fmt.Sprintf("sku-%04d", i+1),
			Name:        r.name,
			Description: r.description,
			Price:       money.Cents(r.cents),
			WeightGrams: r.grams,
		}
	}
	return products
}
