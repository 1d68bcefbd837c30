#!/usr/bin/env python3
"""Generate winnow's sample corpora under samples/.

Every word of text in the samples is composed here, from templates and word
lists written for winnow; nothing is copied from any other corpus.

    python3 scripts/gen_samples.py            # writes samples/ next to scripts/
    python3 scripts/gen_samples.py --out DIR  # writes somewhere else

Output is deterministic: fixed seeds, records in id order, archive members in
name order with mtime 0, and compression through `zstd -q -19` and
`gzip -n -9`, so two runs produce byte-identical files.

Standard library only; needs the `zstd` and `gzip` command line tools.
"""

import argparse
import datetime
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile

# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------

SLOT_RE = re.compile(r"\{(\w+)\}")
SMALL_WORDS = {"a", "an", "the", "and", "or", "for", "of", "in", "on", "to", "at", "by", "with", "from"}


def titlecase(s):
    words = s.split(" ")
    out = []
    for i, w in enumerate(words):
        if i > 0 and w in SMALL_WORDS:
            out.append(w)
        elif w[:1].islower():
            out.append(w[0].upper() + w[1:])
        else:
            out.append(w)
    return " ".join(out)


def slugify(s, limit=60):
    s = re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")
    return s[:limit].rstrip("-") or "page"


def word_count(s):
    return len(s.split())


class Filler:
    """Fills {slot} templates. Anchored slots keep one value per document (a
    recipe stays about one dish); other slots are drawn per sentence. Within
    one sentence a repeated key repeats its value, and key2 differs from key."""

    def __init__(self, rng, slots, anchors=()):
        self.rng = rng
        self.slots = slots
        self.fixed = {a: rng.choice(slots[a]) for a in anchors}

    def fill(self, tmpl, cap=True):
        local = {}

        def rep(m):
            key = m.group(1)
            if key in local:
                return local[key]
            if key in self.fixed:
                v = self.fixed[key]
            else:
                base = key.rstrip("0123456789")
                avoid = set()
                if key != base:
                    avoid = {local.get(base), self.fixed.get(base)}
                v = self.rng.choice([c for c in self.slots[base] if c not in avoid])
            local[key] = v
            return v

        s = SLOT_RE.sub(rep, tmpl)
        if cap and s[:1].islower():
            s = s[0].upper() + s[1:]
        return s


def to_paragraphs(rng, sents, lo=2, hi=5):
    paras, i = [], 0
    while i < len(sents):
        n = rng.randint(lo, hi)
        paras.append(sents[i:i + n])
        i += n
    if len(paras) > 1 and len(paras[-1]) == 1 and rng.random() < 0.5:
        paras[-2].extend(paras.pop())
    return paras


def render(title, paras):
    body = "\n\n".join(" ".join(p) for p in paras)
    return (title + "\n\n" + body) if title else body


def compress(data, tool):
    cmd = {"zstd": ["zstd", "-q", "-19", "-c"], "gzip": ["gzip", "-n", "-9", "-c"]}[tool]
    return subprocess.run(cmd, input=data, stdout=subprocess.PIPE, check=True).stdout


def write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def jsonl(records):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


def random_date(rng, lo=(2019, 1, 1), hi=(2024, 12, 31)):
    a = datetime.date(*lo).toordinal()
    b = datetime.date(*hi).toordinal()
    return datetime.date.fromordinal(rng.randint(a, b))


MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December"]

# ---------------------------------------------------------------------------
# English prose topics (web set)
# ---------------------------------------------------------------------------

TOPICS = {}

# Topic-neutral asides mixed into the blog-like topics (not into news reports).
GENERIC = [
    "I wrote most of this on a rainy afternoon, so forgive me if it wanders a little.",
    "None of this is complicated, but it does reward a bit of patience.",
    "It took me years to learn this, mostly by getting it wrong first.",
    "A friend who read an early draft suggested I keep things short, so I will try.",
    "If you only remember one thing from this post, let it be that small habits add up.",
    "I am not an expert, just someone who has made most of the usual mistakes.",
    "There is no single right way to do this, and you will find your own rhythm.",
    "Looking back, the most useful lessons came from the days when things went badly.",
    "Several readers wrote in after my last post with good suggestions, and a few of them are included here.",
    "It is easy to overthink this, so try not to.",
    "The details here reflect my own experience, and yours may well be different.",
    "I keep a small notebook for this kind of thing, and it has been surprisingly useful.",
    "Some of this will be obvious to experienced readers, but it was not obvious to me at first.",
    "Take your time, because rushing rarely saves as much time as it seems to.",
    "Things rarely go exactly to plan, and that is part of the fun.",
    "I have changed my mind about several of these points over the years.",
    "It helps to have a friend to compare notes with, even if only occasionally.",
    "Whatever you decide, write down what you did so that you can learn from it next time.",
    "Most of the advice you will find elsewhere is sensible, but some of it is simply repeated without much thought.",
    "The first attempt is always the hardest, and it gets easier every time after that.",
    "I should admit that I learned some of this the expensive way.",
    "In the end, the point is to enjoy it.",
]

TOPICS["cooking"] = dict(
    domains=["recipes.example.org", "www.example.com", "kitchen.example.net"],
    anchors=["dish", "season"],
    slots=dict(
        dish=["lentil soup", "tomato sauce", "vegetable curry", "mushroom risotto", "roast chicken with potatoes",
              "banana bread", "lemon tart", "chickpea stew", "sourdough bread", "apple crumble", "fried rice",
              "minestrone", "shakshuka", "pumpkin soup", "oat biscuits", "fish pie", "bean chilli"],
        ingredient=["onions", "garlic", "carrots", "celery", "fresh ginger", "red peppers", "spinach", "chickpeas",
                    "leeks", "sweet potatoes", "mushrooms", "courgettes", "shallots", "fennel"],
        herb=["thyme", "basil", "parsley", "rosemary", "coriander", "dill", "sage", "mint", "oregano"],
        tool=["heavy cast iron pot", "wide frying pan", "sharp chef's knife", "sturdy baking tray", "deep saucepan",
              "food processor", "glass mixing bowl", "slow cooker"],
        pot=["heavy cast iron pot", "wide frying pan", "deep saucepan", "slow cooker", "roasting tin", "clay casserole dish"],
        time=["ten minutes", "fifteen minutes", "twenty minutes", "half an hour", "forty minutes"],
        person=["my grandmother", "a neighbour down the road", "an old friend from college", "my aunt",
                "a colleague", "my father", "the owner of a small cafe I used to visit"],
        season=["winter", "spring", "summer", "autumn"],
        day=["Sunday", "Saturday", "Friday evening", "Tuesday night"],
        number=["two", "three", "four", "six"],
    ),
    titles=["How I Make {dish}", "A Simple Recipe for {dish}", "Notes on Making {dish}", "{dish} for a Weeknight",
            "Why I Keep Coming Back to {dish}", "Cooking {dish} for a Crowd", "The Easiest {dish} I Know"],
    openers=[
        "Every {season} I find myself making {dish} at least once a week, mostly because it asks for so little attention.",
        "I learned to make {dish} from {person}, and I have been adjusting the method ever since.",
        "There are many versions of {dish}, and this is simply the one that works best in my small kitchen.",
        "If you have never made {dish} at home, this is a good place to start.",
        "Last {day} I had a little time to spare, so I finally wrote down how I make {dish}.",
        "People often ask me how I make {dish}, so here it is with all the small details I usually forget to mention.",
    ],
    body=[
        "Start by softening the {ingredient} in a little olive oil over medium heat.",
        "Give it about {time}, stirring now and then so nothing catches on the bottom of the pan.",
        "If you cannot find {ingredient}, {ingredient2} will do nearly as well.",
        "A handful of chopped {herb} added at the very end brightens the whole dish.",
        "I like to use a {tool} for this, although almost anything will work.",
        "Taste as you go and add salt a little at a time, since it is easy to add more and impossible to take it out.",
        "The most common mistake is rushing the first step, when the flavour is really being built.",
        "Leftovers keep well in the fridge for three or four days, and the flavour often improves overnight.",
        "This amount feeds {number} people, with a little left over for lunch the next day.",
        "{person} always insisted on adding a pinch of sugar, and I have never found a good reason to argue.",
        "Do not worry too much about exact quantities, because this is a forgiving recipe.",
        "When the kitchen starts to smell sweet and nutty, it is time to add the rest of the ingredients.",
        "I usually double the recipe and freeze half, which makes a busy week much easier.",
        "A squeeze of lemon just before serving lifts the flavours in a way that is hard to describe.",
        "Some people add {ingredient} at this stage, and it is a good choice if you like a little more texture.",
        "It pairs well with a simple green salad and a slice of crusty bread.",
        "If the mixture looks too thick, loosen it with a splash of water or stock.",
        "Cheap ingredients treated with care can taste better than expensive ones treated carelessly.",
        "Keep the heat moderate, because high heat will scorch the outside before the inside is ready.",
        "I have also made this in a {pot}, and the results were just as good.",
        "Children tend to enjoy it, especially if you let them help with the stirring.",
        "The dish is naturally quite mild, so add chilli if you want more warmth.",
        "Fresh {herb} is best, but a teaspoon of dried {herb} is a perfectly good substitute.",
        "Once it is ready, let it rest for five minutes before serving so the flavours can settle.",
        "My kitchen is tiny, so I prepare everything before I turn on the stove.",
        "It is not a fancy dish, but it is the one my family requests most often.",
        "For a richer version, stir in a spoonful of butter at the end.",
        "The recipe is easy to scale up, which makes it useful when friends come over.",
        "I buy most of my vegetables at the market when they are in season, and the difference is noticeable.",
        "Chop everything to roughly the same size so that it cooks evenly.",
        "I once forgot the {ingredient} entirely, and nobody noticed, so do not panic if you run out.",
        "On cold evenings I serve it with a baked potato, which turns it into a proper meal.",
        "The smell alone is usually enough to bring everyone into the kitchen.",
        "If you are cooking for a fussy eater, keep the seasoning simple and offer extra on the side.",
        "A good {tool} is one of the few kitchen purchases I have never regretted.",
        "Serve it in warm bowls, which keeps it hot for longer at the table.",
    ],
    closers=[
        "I hope you give it a try, and I would love to hear how you adapt it.",
        "Make it once as written, then change whatever you like the next time.",
        "That is really all there is to it, and it never fails to make the kitchen smell wonderful.",
        "Enjoy it with people you like, which is the most important ingredient of all.",
        "It may not be the most traditional version, but it is the one we keep coming back to.",
    ],
)

TOPICS["gardening"] = dict(
    domains=["garden.example.net", "www.example.org", "allotment.example.com"],
    anchors=["plant", "place", "soil", "pest"],
    slots=dict(
        plant=["tomatoes", "runner beans", "courgettes", "lettuces", "sweet peas", "strawberries", "potatoes",
               "sunflowers", "kale", "radishes", "peppers", "raspberries", "broad beans", "leeks"],
        pest=["slugs", "aphids", "snails", "caterpillars", "pigeons", "vine weevils"],
        month=["March", "April", "May", "June", "September"],
        soil=["heavy clay", "light sandy soil", "stony ground", "rich loam", "chalky soil"],
        place=["a small back garden", "a shared allotment", "a small courtyard", "a row of raised beds",
               "a corner of the yard"],
        material=["compost", "leaf mould", "well-rotted manure", "straw", "wood chips", "grass clippings"],
        person=["an elderly neighbour", "the man on the next plot", "my mother", "a friend who grows everything from seed"],
    ),
    titles=["Growing {plant} in {place}", "What I Learned Growing {plant} This Year", "A Beginner's Guide to {plant}",
            "Notes from {place}", "Dealing with {pest} Without Chemicals", "Planting {plant} in {month}"],
    openers=[
        "This year I grew {plant} in {place}, and the results were better than I expected.",
        "I have been gardening on {soil} for about ten years now, and it has taught me a lot about patience.",
        "If you are thinking about growing {plant} for the first time, a few simple steps will save you a lot of trouble.",
        "Every spring I promise myself I will plan the garden properly, and every spring I end up improvising.",
        "Gardening in {place} has its limits, but it is surprising how much food a small space can produce.",
    ],
    body=[
        "I sowed the first seeds indoors in {month}, on a bright windowsill away from draughts.",
        "The seedlings went outside once the nights were reliably warm, after a week of hardening off.",
        "{soil} can be hard work, so I dig in plenty of {material} every autumn.",
        "A thick layer of {material} around the plants keeps the soil moist and suppresses weeds.",
        "{pest} were the main problem this year, and they arrived just as the young plants were getting established.",
        "Rather than spraying, I go out in the evening with a torch and remove them by hand.",
        "Watering deeply twice a week is better than a light sprinkle every day, because it encourages deep roots.",
        "The best time to water is early in the morning, before the sun gets strong.",
        "I learned from {person} to plant marigolds between the rows, and it does seem to help.",
        "It is tempting to sow everything at once, but staggered sowings give a steadier harvest.",
        "By midsummer the {plant} were growing so quickly that I could almost see the difference from one day to the next.",
        "Not everything worked, and the {plant2} never really recovered from a cold spell in {month}.",
        "Keeping a simple notebook of what was planted where has made each season easier to plan.",
        "Crop rotation sounds complicated, but in practice it just means not planting the same family in the same bed two years running.",
        "Birds are welcome in the garden, since they eat far more pests than they cause.",
        "A cheap rain butt collects more water than you would expect from a single shed roof.",
        "{person} gave me a bag of seeds saved from last year, and almost every one of them germinated.",
        "I stake the taller plants early, before they flop over in the first strong wind.",
        "Harvest little and often, because many plants produce more when they are picked regularly.",
        "Weeding is easier after rain, when the roots come out of the soil without much effort.",
        "Some of the best advice I have received is simply to walk around the garden every day and look closely.",
        "Compost does not need to be complicated, and a heap of kitchen scraps and garden waste will rot down eventually.",
        "If space is limited, climbing varieties make good use of a fence or trellis.",
        "Pots dry out quickly in hot weather, so they may need watering every day in July.",
        "The first harvest of the season always tastes better than anything from a shop.",
        "Leaving a small wild corner gives frogs and beetles a place to live.",
        "By October the beds were mostly empty, and I sowed green manure to protect the soil over winter.",
        "Gardening teaches you to accept that some years are simply better than others.",
        "Because {soil} behaves so differently from the textbook ideal, I have learned to ignore some of the standard advice.",
        "{plant} are surprisingly forgiving, as long as they get enough sun.",
        "The local garden centre runs a seed swap every {month}, and it is a good way to meet other growers.",
        "I try not to buy new plastic pots any more and reuse old ones instead.",
        "A few minutes spent thinning seedlings early saves a lot of disappointment later.",
        "On warm evenings the garden smells of damp soil and leaves, which is reason enough to grow things.",
    ],
    closers=[
        "Next year I plan to try a few new varieties, but {plant} will certainly stay on the list.",
        "Whatever the size of your space, it is worth growing something, even if it is only a pot of herbs.",
        "The garden is never finished, which is exactly what makes it such a pleasure.",
        "If you have tips of your own, I would be glad to hear them.",
    ],
)

TOPICS["news"] = dict(
    domains=["news.example.org", "www.example.net", "local.example.com"],
    anchors=["town", "facility", "official"],
    slots=dict(
        town=["Millbrook", "Harlow Bay", "Eastfield", "Ashford Crossing", "Pinecrest", "Riverton", "Oakhurst",
              "Westmere", "Cold Spring Valley", "Larkfield"],
        facility=["public library", "community pool", "footbridge over the river", "town hall", "covered market",
                  "skate park", "bus station", "primary school", "sports centre"],
        official=["council member Dana Whitfield", "mayor Tom Alvarez", "planning officer Priya Nair",
                  "head librarian Ruth Okafor", "parks director Samuel Brandt", "council chair Helen Moore"],
        group=["local residents", "parents", "shop owners", "volunteers from the historical society",
               "members of the cycling club", "students from the high school"],
        amount=["twelve thousand dollars", "forty thousand dollars", "two hundred thousand dollars",
                "1.2 million dollars", "half a million dollars"],
        weekday=["Monday", "Tuesday", "Wednesday", "Thursday"],
        month=["February", "March", "April", "June", "September", "October", "November"],
        number=["thirty", "fifty", "more than a hundred", "about two hundred", "nearly three hundred"],
    ),
    titles=["{town} Council Votes on Future of the {facility}", "Residents Gather to Discuss {town} {facility}",
            "Work on {town} {facility} to Begin in {month}", "What the New Budget Means for {town}",
            "{town} Weighs Repairs to the {facility}"],
    openers=[
        "The {town} town council voted on {weekday} evening to approve a plan to renovate the {facility}.",
        "Residents of {town} packed the community hall on {weekday} to discuss the future of the {facility}.",
        "After months of debate, work on the {facility} in {town} is expected to begin in {month}.",
        "The {facility} in {town} will close for several weeks this spring while repairs are carried out, officials said.",
    ],
    body=[
        "The project is expected to cost around {amount}, most of which will come from a state grant.",
        "According to {official}, the building has needed attention for more than a decade.",
        "{group} have raised concerns about noise and traffic during the construction period.",
        "Speaking at the meeting, {official} said the council had listened carefully to public feedback.",
        "{number} people signed a petition asking for longer opening hours.",
        "The council plans to hold a second public meeting in {month} before the final designs are approved.",
        "Several speakers praised the volunteers who have kept the {facility} running on a tight budget.",
        "Others questioned whether the money might be better spent on road repairs.",
        "A temporary service will operate from a nearby church hall while the work is under way.",
        "Local businesses say they are hopeful that the improvements will bring more visitors to the town centre.",
        "The original structure dates from the 1920s and is considered an important part of local history.",
        "Engineers found that parts of the roof and the heating system would need to be replaced entirely.",
        "{official} said the timetable was realistic but acknowledged that delays were possible.",
        "The plan includes new lighting, wider paths, and improved access for wheelchair users.",
        "{group} organised a clean-up day last weekend, collecting more than forty bags of litter.",
        "Parking remains a sore point for many residents, who say the current arrangements are confusing.",
        "The council has promised to publish a full breakdown of the costs on its website.",
        "In a brief statement, the regional transport authority said it supported the proposal.",
        "Use of the {facility} has grown steadily over the past three years.",
        "A small group of protesters gathered outside the meeting, holding signs calling for a delay.",
        "Officials stressed that no final decision on the budget has yet been made.",
        "The last major renovation took place in 1987, when the entrance was rebuilt after a flood.",
        "Residents who wish to comment can do so in writing until the end of {month}.",
        "Many long-time residents said they simply wanted the work finished as quickly as possible.",
        "Supporters argue that the project will pay for itself within a few years through lower energy bills.",
        "{group} told reporters that they had not been consulted early enough.",
        "The {facility} currently serves {number} visitors on a typical weekday, according to council figures.",
        "A spokesperson for the council said the work would be carried out in stages to limit disruption.",
        "Some residents at the meeting asked whether the {facility} could stay partly open during the works.",
        "The proposal was first discussed two years ago but was delayed by a dispute over funding.",
        "{official} thanked {group} for their patience and said more information would follow soon.",
        "Councillors are expected to review the tender documents next month.",
        "Local schools have been invited to take part in a competition to design a new mural.",
        "The decision was passed by five votes to two after a lengthy debate.",
    ],
    closers=[
        "The next council meeting is scheduled for the first {weekday} of {month} and is open to the public.",
        "Further updates are expected once the contracts have been signed.",
        "For now, residents of {town} will have to wait and see whether the plans go ahead as promised.",
    ],
)

TOPICS["software"] = dict(
    domains=["docs.example.com", "blog.example.net", "dev.example.org"],
    anchors=["lang", "task"],
    slots=dict(
        lang=["Python", "Go", "Rust", "C", "Ruby", "Java"],
        task=["reading a configuration file", "parsing command line arguments", "writing a small web server",
              "processing a large CSV file", "adding logging to a script", "writing your first unit test",
              "handling errors cleanly", "splitting a program into modules"],
        tool=["a debugger", "a linter", "a code formatter", "a profiler"],
        editor=["a plain text editor", "your favourite editor", "an editor with syntax highlighting"],
    ),
    titles=["A Gentle Introduction to {task} in {lang}", "{lang} Basics: {task}", "Tutorial: {task} in {lang}",
            "Common Mistakes When {task}"],
    openers=[
        "In this tutorial we will look at {task} in {lang}, step by step.",
        "A reader asked me recently how to approach {task} in {lang}, so this post walks through the way I usually do it.",
        "{task} is one of those jobs that sounds simple until you try it, so let us go through it carefully.",
        "This guide assumes you know a little {lang} but have not yet tried {task}.",
    ],
    body=[
        "First, make sure you have a recent version of {lang} installed and that it runs from the terminal.",
        "Create a new folder for the project and open it in {editor}.",
        "It is a good idea to start with the smallest program that works and build from there.",
        "Give every function a clear name that describes what it does, rather than how it does it.",
        "If something goes wrong, read the error message slowly before changing any code.",
        "Most error messages tell you the file and line number where the problem was noticed.",
        "Running {tool} regularly will catch many small problems before they turn into real bugs.",
        "Keep each function short enough that you can see all of it on the screen at once.",
        "Avoid storing passwords or secret keys directly in your source files.",
        "When a program reads input from outside, it should always check that the input makes sense.",
        "Write a short comment when the reason for a piece of code is not obvious, but do not describe what is already clear.",
        "Test the program with an empty input as well as a normal one, since empty cases often reveal bugs.",
        "At this point the program should run without errors, even though it does not do much yet.",
        "Next, we add the part that does the real work.",
        "Try not to handle every possible case at once, and get the common path working first.",
        "The standard library already includes most of what we need, so there is no reason to install extra packages.",
        "Printing intermediate values is a crude but effective way to understand what your code is doing.",
        "If the program becomes slow on large inputs, measure before you try to optimise anything.",
        "Commit your work to version control after each step, so you can always go back.",
        "Naming things well takes practice, and it is fine to rename them later as your understanding improves.",
        "It is usually better to fail loudly with a clear message than to continue with bad data.",
        "Once it works, read through the code again and remove anything that is no longer needed.",
        "Beginners often copy code from the internet without understanding it, which makes later changes much harder.",
        "A small automated test will tell you immediately if a later change breaks this behaviour.",
        "Using {tool} for the first time can feel awkward, but it quickly pays for itself.",
        "Notice that we close the file as soon as we are finished with it, which avoids subtle problems later.",
        "Do not worry if your first version is not elegant, because clarity matters more than cleverness.",
        "Every language has its own conventions, and following them makes your code easier for others to read.",
        "In {lang}, the usual tool for this lives in the standard library, and its documentation has a short example worth reading.",
        "Before writing any code, spend a minute describing in plain words what {task} actually involves.",
        "When I first tried {task} in {lang}, I spent an hour chasing a typo in a file name.",
        "Keep a terminal open next to {editor} so you can run the program after every small change.",
        "If {tool} reports a warning you do not understand, look it up rather than silencing it.",
        "Resist the urge to add options that nobody has asked for yet.",
        "Error handling in {lang} has its own style, and it is worth learning it early.",
        "A useful trick is to keep a small sample input in the project folder and run against it every time.",
        "If a function needs more than a handful of arguments, it is probably doing too much.",
        "Reading code that other people have written in {lang} is one of the quickest ways to pick up good habits.",
        "It is fine to look things up constantly, since even experienced programmers do it every day.",
        "When the code finally works, take a moment to understand why it works before moving on.",
        "Talking a stubborn problem through with a colleague can make it disappear in minutes.",
        "Document any assumption about the input, such as its encoding or its maximum size.",
    ],
    closers=[
        "That is all for this part, and in the next tutorial we will extend the program with a few more features.",
        "With these basics in place, {task} in {lang} should feel much less intimidating.",
        "Try changing the example and see what happens, which is the fastest way to learn.",
        "If you get stuck, go back one step and make sure each piece works on its own.",
    ],
)

TOPICS["travel"] = dict(
    domains=["travel.example.net", "www.example.org", "journeys.example.com"],
    anchors=["dest", "month", "companion"],
    slots=dict(
        dest=["Lisbon", "the Scottish Highlands", "Kyoto", "a small fishing village on the Adriatic coast",
              "the Lake District", "Oaxaca", "the Norwegian fjords", "Tasmania", "the hill towns of Tuscany",
              "Vancouver", "the Atlas Mountains", "Hoi An"],
        transport=["the night train", "a rented bicycle", "a slow local bus", "a small ferry", "a borrowed car"],
        food=["grilled fish", "fresh bread and cheese", "a bowl of noodle soup", "sweet pastries",
              "a simple vegetable stew", "spicy street food", "slow-cooked lamb"],
        companion=["my sister", "two old friends", "my partner", "a colleague", "my parents"],
        duration=["four days", "a week", "ten days", "two weeks", "a long weekend"],
        month=["March", "April", "May", "June", "September", "October"],
        weather=["clear and cool", "warm but windy", "grey and drizzly", "hot and humid", "bright and crisp"],
    ),
    titles=["{duration} in {dest}", "Slow Travel in {dest}", "What to Know Before Visiting {dest}",
            "Notes from a Trip to {dest}", "A Budget Guide to {dest}"],
    openers=[
        "We spent {duration} in {dest} in {month}, and it turned out to be one of the most relaxed trips we have taken.",
        "I had wanted to visit {dest} for years, and this {month} I finally went with {companion}.",
        "This is a short account of {duration} in {dest}, along with a few practical tips for anyone planning a similar trip.",
    ],
    body=[
        "We travelled by {transport}, which was cheaper than flying and far more interesting.",
        "The weather was mostly {weather}, so we packed layers and a light rain jacket.",
        "Our guesthouse was run by a retired teacher who seemed to know everyone in town.",
        "Each morning we had breakfast in the same small cafe, and by the third day the owner knew our order.",
        "The best meal of the trip was {food} at a place with no menu and only four tables.",
        "Most of the famous sights are busy by mid-morning, so it is worth setting out early.",
        "We spent one whole afternoon simply walking without a plan, which ended up being a highlight.",
        "Learning a few words of the local language made a real difference to how people treated us.",
        "Public transport was reliable and inexpensive, although timetables were sometimes hard to find.",
        "If you have only a short time, choose one area and explore it properly rather than rushing between places.",
        "There is a small museum near the old market that most visitors seem to miss entirely.",
        "Prices were lower than we expected, especially away from the main tourist streets.",
        "One evening we joined a free walking tour led by a student who was studying history.",
        "The views from the ridge were worth every step of the steep climb.",
        "We met travellers from all over the world, many of whom had arrived with no fixed plans.",
        "Carry some cash, because smaller shops and markets often do not accept cards.",
        "{companion} insisted on trying {food}, and it turned out to be delicious.",
        "Comfortable shoes are essential, as many of the streets and paths are steep and uneven.",
        "On the last day we took {transport} to a quiet spot a little way out of town.",
        "The people we spoke to were proud of their home and happy to recommend places to visit.",
        "Booking accommodation a few weeks ahead saved us a surprising amount of money.",
        "Travel slowly if you can, because the most memorable moments are rarely the ones you planned.",
        "In the evenings the streets filled with families out for a stroll, and the whole place felt relaxed.",
        "We kept our luggage light, which made moving between towns far easier.",
        "There were very few tourists in {month}, which made everything feel calmer.",
        "We set a small budget for each day and were rarely over it.",
        "Our favourite discovery was a bakery that opened at six and sold out by nine.",
        "Phone signal was patchy outside the towns, so we downloaded maps before setting out.",
        "{companion} kept a travel diary, and reading it back now brings the whole trip to mind.",
        "The light in the early evening was extraordinary, and we took far too many photographs.",
        "Tipping customs vary, so it is worth asking your host what is usual.",
    ],
    closers=[
        "We left {dest} already talking about when we might return.",
        "If you have the chance to go, take it, and leave plenty of time to wander.",
        "It was a short trip, but it reminded me how much I enjoy travelling slowly.",
    ],
)

# ---------------------------------------------------------------------------
# Explainer subjects (web science column and the target set)
# (field, short name, title, topic phrase, indirect question, facts)
# ---------------------------------------------------------------------------

SUBJECTS = [
    ("science", "Rayleigh Scattering", "Why Is the Sky Blue?", "why the sky is blue", "why the sky is blue", [
        "Sunlight looks white, but it is a mixture of many colours, each with a different wavelength.",
        "When that light enters the atmosphere, it meets nitrogen and oxygen molecules that are far smaller than the wavelength of visible light.",
        "Molecules this small scatter short wavelengths much more strongly than long ones, an effect known as Rayleigh scattering.",
        "Blue light has a shorter wavelength than red light, so it is scattered several times more strongly.",
        "As a result, blue light reaches our eyes from every part of the sky, not just from the direction of the sun.",
        "Violet light is scattered even more, but the sun emits less of it and our eyes are less sensitive to it, so the sky looks blue rather than violet.",
        "At sunrise and sunset, light travels through much more air before it reaches us.",
        "By then most of the blue has been scattered away, leaving the warm reds and oranges that colour the evening sky.",
    ]),
    ("science", "Tides", "What Causes the Tides?", "how tides work", "what causes the tides", [
        "Tides are the slow rise and fall of sea level that most coasts experience twice a day.",
        "They are caused mainly by the gravitational pull of the moon, with a smaller contribution from the sun.",
        "The moon pulls more strongly on the side of the earth facing it than on the far side, and this difference stretches the oceans into two bulges.",
        "One bulge points toward the moon and the other points away from it.",
        "As the earth rotates, a given coastline passes through both bulges, which is why there are usually two high tides each day.",
        "When the sun and moon line up, at new moon and full moon, their effects add together and produce larger spring tides.",
        "When they pull at right angles to each other, the tides are weaker, and these are called neap tides.",
        "The shape of the coast and the depth of the sea floor can amplify the effect, which is why some bays see tides of more than ten metres.",
    ]),
    ("science", "Photosynthesis", "How Photosynthesis Works", "photosynthesis", "how plants make their own food", [
        "Photosynthesis is the process plants use to turn light into chemical energy.",
        "It takes place mostly in the leaves, inside small structures called chloroplasts.",
        "Chlorophyll, the pigment that makes leaves green, absorbs red and blue light and reflects most of the green.",
        "The absorbed energy is used to split water molecules, releasing oxygen as a by-product.",
        "The plant then uses that energy to combine carbon dioxide from the air into sugars.",
        "Those sugars fuel the growth of the plant and are stored as starch for later use.",
        "Almost every food chain on land depends on this process, directly or indirectly.",
        "It is also the reason the atmosphere contains enough oxygen for animals to breathe.",
    ]),
    ("science", "Vaccines", "How Vaccines Train the Immune System", "how vaccines work", "how vaccines work", [
        "A vaccine prepares the immune system to recognise a germ before a real infection happens.",
        "Most vaccines contain a harmless piece of the germ, a weakened form of it, or instructions for making one of its proteins.",
        "The immune system reacts to this material much as it would to the real thing, producing antibodies and specialised cells.",
        "Some of those cells, called memory cells, remain in the body for months or years.",
        "If the real germ appears later, the memory cells recognise it quickly and the response is much faster and stronger.",
        "This is why a vaccinated person often avoids serious illness even if they are exposed.",
        "When enough people in a community are immune, a disease has trouble spreading at all.",
        "That indirect protection helps people who cannot be vaccinated, such as very young babies.",
    ]),
    ("science", "Plate Tectonics", "Plate Tectonics in Brief", "plate tectonics", "why the continents move", [
        "The outer shell of the earth is broken into large pieces called tectonic plates.",
        "These plates rest on a hotter, softer layer of rock beneath them and move a few centimetres each year.",
        "That is roughly the speed at which fingernails grow.",
        "Where plates pull apart, molten rock rises to fill the gap and new crust is formed, as along the middle of the Atlantic Ocean.",
        "Where they collide, one plate may slide beneath the other, creating deep trenches and chains of volcanoes.",
        "When two continents collide, neither sinks easily, and the crust crumples upward into mountain ranges.",
        "Plates can also grind past each other sideways, and the stress that builds up along these faults is released in earthquakes.",
        "Over hundreds of millions of years, these slow movements have rearranged the continents many times.",
    ]),
    ("science", "The Seasons", "Why We Have Seasons", "what causes the seasons", "what causes the seasons", [
        "Many people assume that summer happens when the earth is closest to the sun, but that is not the reason for the seasons.",
        "The real cause is the tilt of the axis of the earth, which is about twenty-three degrees.",
        "As the earth orbits the sun, the axis stays pointed in the same direction in space.",
        "For part of the year the northern hemisphere leans toward the sun, and for the other part it leans away.",
        "When a hemisphere leans toward the sun, sunlight strikes it more directly and the days are longer.",
        "More direct light means more energy falls on each square metre of ground, so temperatures rise.",
        "This is why the seasons are reversed in the two hemispheres, with summer in Australia during the northern winter.",
        "In fact, the earth is closest to the sun in early January.",
    ]),
    ("science", "Batteries", "How a Battery Works", "how batteries work", "how a battery stores energy", [
        "A battery stores energy in chemical form and releases it as electricity when a circuit is connected.",
        "Inside every battery there are two electrodes, called the anode and the cathode, separated by an electrolyte.",
        "When the battery is in use, a chemical reaction at the anode releases electrons.",
        "Those electrons cannot pass through the electrolyte, so they travel through the external circuit instead, powering whatever is attached.",
        "At the same time, charged atoms called ions move through the electrolyte to balance the charge.",
        "In a rechargeable battery, such as a lithium-ion cell, an outside current can push the reaction backward.",
        "Over many cycles, small side reactions slowly use up material that could otherwise take part, which is why batteries lose capacity as they age.",
        "Heat speeds up those side reactions, so keeping a battery cool helps it last longer.",
    ]),
    ("science", "Sound", "How Sound Travels", "how sound travels", "how sound travels from one place to another", [
        "Sound is a wave of pressure that travels through a material such as air, water, or steel.",
        "When a guitar string vibrates, it pushes on nearby air molecules, which push on their neighbours in turn.",
        "The result is a pattern of compressed and stretched regions that moves outward from the source.",
        "The number of vibrations per second is the frequency, and we hear higher frequencies as higher pitches.",
        "The size of the pressure changes determines how loud the sound seems.",
        "Sound travels at about three hundred and forty metres per second in air, but more than four times faster in water.",
        "It cannot travel through a vacuum at all, because there is nothing there to carry the vibration.",
        "This is why space, despite what films suggest, is completely silent.",
    ]),
    ("science", "Floating Ice", "Why Ice Floats", "why ice floats", "why ice floats on water", [
        "Most substances become denser when they freeze, but water is an unusual exception.",
        "In liquid water, molecules move around freely and pack fairly closely together.",
        "As water freezes, hydrogen bonds lock the molecules into an open, hexagonal pattern.",
        "That pattern takes up more space than the liquid, so ice is about nine percent less dense than water.",
        "Because it is less dense, ice floats on the surface instead of sinking.",
        "This matters a great deal for life in lakes and ponds.",
        "A layer of ice at the surface insulates the water below, which usually stays liquid through the winter.",
        "If ice sank, many bodies of water would freeze solid from the bottom up.",
    ]),
    ("science", "Antibiotic Resistance", "Why Antibiotics Stop Working", "antibiotic resistance",
     "why antibiotics sometimes stop working", [
        "Antibiotics are medicines that kill bacteria or stop them from multiplying.",
        "Each antibiotic targets a particular part of bacterial life, such as building the cell wall or making proteins.",
        "In any large population of bacteria, a few individuals may carry small genetic differences that help them survive a drug.",
        "When an antibiotic is used, the susceptible bacteria die, but those few survivors can keep growing.",
        "Over time, the resistant strain becomes more common, and the drug loses its effect.",
        "Bacteria can also pass resistance genes to one another, even across different species.",
        "Using antibiotics only when they are needed, and exactly as prescribed, slows this process down.",
        "Antibiotics do not work against viruses, so they are of no help for a common cold.",
    ]),
    ("mathematics", "Prime Numbers", "An Introduction to Prime Numbers", "prime numbers", "what makes a number prime", [
        "A prime number is a whole number greater than one that can be divided evenly only by one and itself.",
        "The first few primes are two, three, five, seven, eleven, and thirteen.",
        "Every whole number greater than one can be written as a product of primes in exactly one way, apart from the order of the factors.",
        "This result is so important that it is called the fundamental theorem of arithmetic.",
        "More than two thousand years ago, Euclid showed that there are infinitely many primes.",
        "His argument is short: multiply any finite list of primes together and add one, and the result has a prime factor that is not on the list.",
        "Primes become rarer as numbers grow, but they never run out.",
        "Modern encryption relies on the fact that multiplying two large primes is easy, while recovering them from the product is extremely hard.",
    ]),
    ("mathematics", "The Gambler's Fallacy", "The Gambler's Fallacy", "the gambler's fallacy",
     "whether a coin can ever be due for tails", [
        "Probability describes how likely an event is, on a scale from zero to one.",
        "A fair coin has a probability of one half of landing heads on any single toss.",
        "Many people believe that after five heads in a row, tails is somehow due.",
        "This belief is known as the gambler's fallacy.",
        "The coin has no memory, so the probability of tails on the next toss is still exactly one half.",
        "Over a very large number of tosses, the proportion of heads will approach one half, but that happens because the early streak is diluted, not corrected.",
        "The same reasoning applies to lottery numbers, roulette wheels, and any other process whose outcomes are independent.",
        "Recognising independence is one of the most useful habits in thinking clearly about chance.",
    ]),
    ("mathematics", "The Pythagorean Theorem", "The Pythagorean Theorem", "the Pythagorean theorem",
     "what the Pythagorean theorem actually says", [
        "The Pythagorean theorem describes a relationship between the sides of a right triangle.",
        "If the two shorter sides have lengths a and b, and the longest side has length c, then a squared plus b squared equals c squared.",
        "For example, a triangle with shorter sides of three and four has a longest side of exactly five.",
        "One classic proof arranges four copies of the triangle inside a large square.",
        "The space left over can be arranged in two different ways, and comparing the areas gives the result.",
        "Builders have used the three, four, five rule for centuries to check that corners are square.",
        "The theorem also lets us compute the straight-line distance between two points on a map.",
        "In higher dimensions, the same idea extends naturally to measure distances in space.",
    ]),
    ("mathematics", "Exponential Growth", "Understanding Exponential Growth", "exponential growth",
     "how exponential growth works", [
        "Exponential growth happens when a quantity increases by a fixed percentage over each period of time.",
        "Because each increase is based on the current size, the growth keeps speeding up.",
        "A classic illustration is a chessboard with one grain of rice on the first square, two on the second, four on the third, and so on.",
        "By the last square, the total would be far more rice than the world produces in a year.",
        "A useful shortcut is the rule of seventy: divide seventy by the percentage growth rate to estimate the doubling time.",
        "At seven percent per year, for example, a quantity doubles in about ten years.",
        "Savings accounts, populations, and the early spread of an infection can all follow this pattern for a while.",
        "In the real world, growth usually slows eventually, because resources or space run out.",
    ]),
    ("mathematics", "Mean and Median", "Mean or Median?", "the difference between the mean and the median",
     "what the difference is between a mean and a median", [
        "The word average can refer to several different measures, and the difference matters.",
        "The mean is found by adding up all the values and dividing by how many there are.",
        "The median is the middle value when all the values are sorted in order.",
        "For data that are roughly symmetric, the two are close together.",
        "When a few values are extremely large, however, the mean is pulled upward while the median barely moves.",
        "Household income is a good example, since a small number of very high earners raise the mean considerably.",
        "For that reason, reports on income or house prices usually quote the median.",
        "Looking at both numbers together often reveals more than either one alone.",
    ]),
    ("mathematics", "Division by Zero", "Why We Cannot Divide by Zero", "why division by zero is undefined",
     "why nobody is allowed to divide by zero", [
        "Division answers the question of how many times one number fits into another.",
        "Twelve divided by three is four, because four threes make twelve.",
        "If we try to divide twelve by zero, we would need a number that, multiplied by zero, gives twelve.",
        "No such number exists, since anything multiplied by zero is zero.",
        "Zero divided by zero has the opposite problem, because every number would work equally well.",
        "Rather than choose an answer arbitrarily, mathematicians leave division by zero undefined.",
        "Calculus offers a more careful way to ask what happens as a divisor gets closer and closer to zero.",
        "In that setting the result can grow without limit, which is a different idea from actually dividing by zero.",
    ]),
    ("mathematics", "Binary Numbers", "Counting in Binary", "binary numbers", "how binary numbers work", [
        "Binary is a way of writing numbers using only two digits, zero and one.",
        "In the familiar decimal system, each position is worth ten times the position to its right.",
        "In binary, each position is worth twice as much instead, so the places stand for one, two, four, eight, and so on.",
        "The binary number one zero one therefore means one four, no twos, and one one, which is five.",
        "Computers use binary because electronic circuits can reliably tell the difference between two states, such as high and low voltage.",
        "A single binary digit is called a bit, and a group of eight bits is called a byte.",
        "One byte can represent two hundred and fifty-six different values.",
        "Text, images, and sound are all stored as long sequences of bits, interpreted according to agreed rules.",
    ]),
    ("programming", "Hash Tables", "How Hash Tables Work", "hash tables", "how a hash table finds things so quickly", [
        "A hash table is a data structure that stores values so they can be found quickly by a key.",
        "It works by passing each key through a hash function, which turns it into a number.",
        "That number is used to choose a slot in an underlying array.",
        "When you look up a key, the table computes the same hash and goes straight to the right slot, instead of searching every entry.",
        "Sometimes two different keys produce the same slot, which is called a collision.",
        "Common solutions are to keep a short list in each slot or to probe nearby slots until an empty one is found.",
        "As the table fills up, collisions become more frequent, so most implementations grow the array and reinsert the entries once it passes a certain load.",
        "With a good hash function, lookups, insertions, and deletions take roughly constant time on average.",
    ]),
    ("programming", "Recursion", "Understanding Recursion", "recursion", "what recursion is", [
        "A recursive function is one that solves a problem by calling itself on a smaller version of the same problem.",
        "Every recursive function needs a base case, a version of the problem simple enough to answer directly.",
        "Computing a factorial is a classic example: the factorial of five is five times the factorial of four, and so on down to one.",
        "Without a base case, the function would keep calling itself until the program ran out of memory.",
        "Each call is stored on the call stack until it finishes, so very deep recursion can be expensive.",
        "Recursion is a natural fit for data that is itself nested, such as folders inside folders or the branches of a tree.",
        "Many recursive solutions can be rewritten as loops, which is sometimes more efficient.",
        "Even so, the recursive version is often easier to read and to reason about.",
    ]),
    ("programming", "Version Control", "Why Use Version Control?", "version control", "what version control is for", [
        "Version control is a system for recording changes to files over time.",
        "It lets you see who changed what, when they changed it, and why.",
        "In Git, each saved snapshot of a project is called a commit, and every commit has a short message describing the change.",
        "Branches allow several lines of work to proceed in parallel without getting in each other's way.",
        "When a feature is finished, its branch can be merged back into the main line of development.",
        "If two people change the same lines, Git reports a conflict and asks a person to decide how to combine the edits.",
        "Because every commit is kept, it is easy to return to an earlier version if a mistake slips in.",
        "Small, focused commits with clear messages make that history much more useful.",
    ]),
    ("programming", "Big O Notation", "Big O Notation Explained", "big O notation", "what big O notation means", [
        "Big O notation describes how the running time of an algorithm grows as its input gets larger.",
        "It ignores constant factors and focuses on the overall shape of the growth.",
        "An algorithm that looks at each item once is said to run in linear time.",
        "One that compares every item with every other item runs in quadratic time, which becomes slow very quickly.",
        "Binary search, which halves the remaining range at each step, runs in logarithmic time.",
        "That is why searching a sorted list of a million items takes only about twenty steps.",
        "Big O does not say how fast a program is in seconds, only how it scales.",
        "For small inputs, a simple quadratic method can actually beat a clever one with more overhead.",
    ]),
    ("programming", "Floating Point", "Why Floating Point Sums Look Wrong", "floating point numbers",
     "why computers sometimes get decimal sums slightly wrong", [
        "Computers usually store fractional numbers in a format called floating point.",
        "A floating point number keeps a fixed number of significant binary digits along with an exponent, much like scientific notation.",
        "Because it uses binary, many simple decimal fractions cannot be represented exactly.",
        "The value one tenth, for example, becomes an endless repeating pattern in binary and has to be rounded.",
        "This is why adding one tenth and two tenths in many languages gives a result very slightly different from three tenths.",
        "The error is tiny, but it can accumulate over millions of operations.",
        "For that reason, programs should rarely test floating point values for exact equality.",
        "Financial software often avoids the problem by counting in whole cents or by using a decimal type.",
    ]),
    ("programming", "Unit Tests", "What Makes a Good Unit Test", "unit testing", "what a unit test is for", [
        "A unit test is a small piece of code that checks that one part of a program behaves as expected.",
        "It usually calls a function with known inputs and compares the result with the correct answer.",
        "Good tests are fast, independent of each other, and focused on a single behaviour.",
        "When a test fails, it should be obvious what went wrong from its name and its message.",
        "Running the whole suite after every change catches many mistakes within seconds.",
        "Tests also serve as documentation, showing how a function is meant to be used.",
        "Writing a test before fixing a bug is a useful habit, because it proves the bug exists and shows when it is gone.",
        "Tests cannot prove that a program is correct, but they make it much harder for old mistakes to return quietly.",
    ]),
    ("programming", "Caching", "Caching in Plain Language", "caching", "how caching speeds programs up", [
        "A cache is a small, fast store that keeps copies of data that are likely to be needed again.",
        "Reading from memory is far quicker than reading from a disk or fetching something over a network.",
        "When a program needs a value, it checks the cache first, and only goes to the slower source on a miss.",
        "Because a cache is limited in size, it needs a rule for deciding what to throw away.",
        "A common rule is to evict whichever item has gone unused for the longest time.",
        "The hardest part of caching is keeping copies up to date when the original data changes.",
        "Serving a stale value can cause confusing bugs, so many caches attach an expiry time to each entry.",
        "Used carefully, caching can turn a sluggish system into a responsive one with very little extra code.",
    ]),
]

SCIENCE_COLUMN = dict(
    titles=["Everyday Science: Reader Questions", "Science Notes for Curious Minds", "Questions from the Science Mailbag",
            "Short Answers to Big Questions", "The Curious Column"],
    openers=[
        "Welcome back to our regular column, where we try to answer questions sent in by readers.",
        "As usual, this week's questions came from readers of all ages, and some of them were harder than they looked.",
        "This column answers a handful of questions that people have been asking us, in plain language.",
        "Every few weeks we collect the most interesting questions from our inbox and try to answer them properly.",
    ],
    leads=["A reader asked {q}.", "Several people wrote in to ask {q}.", "Someone at a recent talk asked {q}.",
           "This week we also look at {q}.", "A younger reader wanted to know {q}.",
           "Our next question is {q}."],
    closers=[
        "Keep the questions coming, and we will answer as many as we can in the next issue.",
        "If any of these answers raised new questions, please send them in.",
        "That is all for this issue, but there is always more to wonder about.",
    ],
)

# ---------------------------------------------------------------------------
# Other languages (written for winnow; simple, grammatical sentences)
# ---------------------------------------------------------------------------

FOREIGN = {
    "fr": dict(slots=dict(city=["Lyon", "Nantes", "Dijon", "Rennes", "Annecy"],
                          food=["des pommes", "des tomates", "des cerises", "des haricots verts", "des poires"],
                          day=["samedi", "dimanche", "vendredi"]),
               first="Ce matin, je suis allé au marché de {city} avec ma sœur.",
               rest=["Il faisait beau et les étals étaient pleins de fruits de saison.",
                     "Nous avons acheté {food}, du pain frais et un peu de fromage.",
                     "Le marchand nous a expliqué que la récolte avait été bonne cette année.",
                     "Après les courses, nous avons pris un café sur la place principale.",
                     "La ville organise un concert gratuit {day} soir près de la rivière.",
                     "Je vous conseille d'arriver tôt, car il y a souvent beaucoup de monde.",
                     "C'est une façon simple et agréable de passer une matinée.",
                     "Les enfants ont adoré le stand de crêpes, comme chaque année.",
                     "Sur le chemin du retour, nous nous sommes arrêtés pour regarder les bateaux sur la rivière."]),
    "de": dict(slots=dict(day=["Samstag", "Sonntag", "Montag"], city=["Freiburg", "Heidelberg", "Kassel", "Bamberg"]),
               first="Am {day} haben wir einen langen Spaziergang durch den Wald bei {city} gemacht.",
               rest=["Der Weg war gut ausgeschildert und nicht besonders steil.",
                     "Unterwegs haben wir eine kleine Hütte gefunden, in der es Kaffee und Kuchen gab.",
                     "Die Wirtin erzählte uns, dass die Hütte seit über hundert Jahren im Besitz ihrer Familie ist.",
                     "Am Nachmittag zog ein leichter Regen auf, aber das hat uns nicht gestört.",
                     "Wer die Gegend besuchen möchte, sollte feste Schuhe und eine Regenjacke mitnehmen.",
                     "Im Herbst ist die Landschaft besonders schön, wenn sich die Blätter verfärben.",
                     "Wir werden sicher bald wiederkommen.",
                     "Die Luft war frisch, und man hörte nur das Rauschen der Bäume.",
                     "Zum Abschluss haben wir in einem kleinen Gasthaus im Dorf zu Abend gegessen."]),
    "es": dict(slots=dict(city=["Valencia", "Salamanca", "Granada", "Bilbao"], month=["enero", "marzo", "septiembre", "octubre"]),
               first="La biblioteca municipal de {city} ampliará su horario a partir de {month}.",
               rest=["Los vecinos podrán consultar libros y usar los ordenadores hasta las nueve de la noche.",
                     "Según la directora, la decisión responde a una petición de los estudiantes.",
                     "Además, se organizarán talleres de lectura para niños todos los sábados por la mañana.",
                     "La inscripción es gratuita, pero las plazas son limitadas.",
                     "El ayuntamiento espera que más personas descubran los servicios de la biblioteca.",
                     "Para más información, se puede preguntar en la recepción del edificio.",
                     "Muchos usuarios ya han expresado su satisfacción con el cambio.",
                     "El edificio fue renovado el año pasado y ahora cuenta con una sala de estudio más amplia.",
                     "También habrá una pequeña exposición de fotografías antiguas de la ciudad."]),
    "ru": dict(slots=dict(city=["Казани", "Самаре", "Твери", "Перми", "Ярославле"]),
               first="Вчера в {city} прошёл городской фестиваль, посвящённый весне.",
               rest=["На главной площади выступали местные музыканты и школьные хоры.",
                     "Организаторы подготовили ярмарку, где можно было купить мёд, хлеб и изделия ручной работы.",
                     "Погода была тёплой, поэтому гостей оказалось больше, чем ожидалось.",
                     "Дети особенно радовались урокам рисования под открытым небом.",
                     "Вечером фестиваль завершился небольшим фейерверком над рекой.",
                     "Жители надеются, что праздник станет ежегодной традицией.",
                     "Следующее подобное мероприятие планируется провести осенью.",
                     "Многие пришли всей семьёй и провели на празднике целый день.",
                     "Волонтёры помогали гостям и следили за порядком."]),
    "zh": dict(slots=dict(city=["杭州", "成都", "苏州", "昆明", "厦门"]),
               first="上周末，我和朋友去了{city}的一家小茶馆。",
               rest=["茶馆的老板很热情，给我们介绍了几种当地的绿茶。",
                     "我们一边喝茶，一边聊起了最近读过的书。",
                     "窗外下着小雨，街上的行人不多。",
                     "这家茶馆已经开了二十多年，很多客人都是附近的老邻居。",
                     "如果你有机会去那里，一定要尝尝他们做的点心。",
                     "回家的路上，我们决定下个月再来一次。",
                     "慢慢喝一杯茶，是忙碌生活中难得的休息。",
                     "茶馆里还有一个小书架，客人可以随便翻看。",
                     "老板说，春天的新茶味道最清香。"]),
    "ja": dict(slots=dict(day=["土曜日", "日曜日", "水曜日"], city=["金沢", "松本", "奈良", "函館"]),
               first="先週の{day}、{city}にある古い図書館に行きました。",
               rest=["建物は百年以上前に建てられたそうです。",
                     "中には静かな読書室があり、多くの学生が勉強していました。",
                     "私は旅行の本を何冊か借りて、近くの公園で読みました。",
                     "天気がよくて、桜の花がとてもきれいでした。",
                     "図書館の職員はとても親切で、いろいろなことを教えてくれました。",
                     "また時間があるときに、ゆっくり訪れたいと思います。",
                     "皆さんもぜひ一度行ってみてください。",
                     "入口の近くには小さなカフェもあって、コーヒーがおいしかったです。",
                     "帰りに駅の近くでお土産を買いました。"]),
    "ar": dict(slots=dict(city=["الإسكندرية", "طنجة", "صور", "مسقط"]),
               first="زرت الأسبوع الماضي مدينة {city} لأول مرة.",
               rest=["كانت الشوارع القديمة مليئة بالمحلات الصغيرة والمقاهي.",
                     "تناولت الغداء في مطعم عائلي يقدم أطباقا تقليدية.",
                     "تحدثت مع صاحب المطعم عن تاريخ الحي وعن التغيرات التي شهدها.",
                     "في المساء، جلست على الشاطئ وشاهدت غروب الشمس.",
                     "أنصح كل من يحب السفر أن يزور هذه المدينة الجميلة.",
                     "الناس هناك طيبون ومرحبون بالضيوف.",
                     "أتمنى أن أعود إليها قريبا مع عائلتي.",
                     "زرت أيضا السوق القديم واشتريت بعض التوابل والهدايا الصغيرة.",
                     "كان الطقس معتدلا، والنسيم يأتي من البحر طوال اليوم."]),
    "hi": dict(slots=dict(city=["जयपुर", "लखनऊ", "इंदौर", "पुणे"]),
               first="पिछले रविवार हम {city} के पुराने बाज़ार गए।",
               rest=["बाज़ार में रंग-बिरंगे कपड़े, मसाले और मिठाइयाँ बिक रही थीं।",
                     "हमने एक छोटी दुकान पर गरम चाय पी और समोसे खाए।",
                     "दुकानदार ने बताया कि उसकी दुकान पचास साल पुरानी है।",
                     "शाम को हम पास के बगीचे में टहलने गए।",
                     "अगर आप कभी वहाँ जाएँ, तो सुबह जल्दी पहुँचने की कोशिश करें।",
                     "सुबह भीड़ कम होती है और मौसम भी सुहावना रहता है।",
                     "यह यात्रा हमें लंबे समय तक याद रहेगी।",
                     "वहाँ के लोग बहुत मिलनसार थे और उन्होंने हमें कई अच्छी जगहें बताईं।",
                     "लौटते समय हमने घर के लिए कुछ मिठाइयाँ भी खरीदीं।"]),
    "el": dict(slots=dict(island=["στη Νάξο", "στην Κρήτη", "στη Σίφνο", "στην Άνδρο", "στη Λέσβο"]),
               first="Το περασμένο καλοκαίρι περάσαμε μια εβδομάδα {island}.",
               rest=["Κάθε πρωί κολυμπούσαμε σε μια ήσυχη παραλία κοντά στο χωριό.",
                     "Το μεσημέρι τρώγαμε φρέσκο ψάρι και σαλάτα σε μια μικρή ταβέρνα.",
                     "Οι κάτοικοι ήταν πολύ φιλόξενοι και μας έδειξαν μέρη που δεν γράφουν οι οδηγοί.",
                     "Το βράδυ ο ουρανός ήταν γεμάτος αστέρια.",
                     "Αν σκέφτεστε να ταξιδέψετε εκεί, προτιμήστε τον Ιούνιο ή τον Σεπτέμβριο.",
                     "Θα θέλαμε πολύ να επιστρέψουμε του χρόνου.",
                     "Ήταν ένα από τα πιο όμορφα ταξίδια μας.",
                     "Μια μέρα νοικιάσαμε ένα μικρό σκάφος και γυρίσαμε τις γύρω παραλίες.",
                     "Στο λιμάνι υπήρχαν πολλά καφενεία όπου καθόμασταν μέχρι αργά."]),
}
CJK = {"zh", "ja"}

# ---------------------------------------------------------------------------
# Document makers
# ---------------------------------------------------------------------------


def target_words(rng):
    r = rng.random()
    if r < 0.25:
        return rng.randint(80, 150)
    if r < 0.65:
        return rng.randint(150, 300)
    if r < 0.90:
        return rng.randint(300, 450)
    return rng.randint(450, 600)


def make_prose(rng, topic):
    """A structured prose document: dict(topic, title, paras, filler)."""
    if topic == "science":
        return make_science_column(rng)
    t = TOPICS[topic]
    f = Filler(rng, t["slots"], t["anchors"])
    goal = target_words(rng)
    opener = f.fill(rng.choice(t["openers"]))
    closer = f.fill(rng.choice(t["closers"]))
    sents = [opener]
    wc = word_count(opener) + word_count(closer)
    body = list(t["body"])
    if topic != "news":
        body += rng.sample(GENERIC, len(body) // 3)
    rng.shuffle(body)
    cap = int(len(body) * 0.55)  # never use most of the pool, so documents stay distinct
    unused = []
    for b in body:
        if wc >= goal or len(sents) > cap:
            unused.append(b)
            continue
        s = f.fill(b)
        sents.append(s)
        wc += word_count(s)
    sents.append(closer)
    title = titlecase(f.fill(rng.choice(t["titles"]))) if rng.random() < 0.65 else None
    return dict(topic=topic, title=title, paras=to_paragraphs(rng, sents), spare=[f.fill(u) for u in unused])


def make_science_column(rng):
    c = SCIENCE_COLUMN
    k = rng.choice([2, 2, 3, 3, 4])
    subs = rng.sample(SUBJECTS, k)
    leads = rng.sample(c["leads"], k)
    paras = [[rng.choice(c["openers"])]]
    spare = []
    for (field, short, title, topic, q, facts), lead in zip(subs, leads):
        n = rng.randint(3, 5)
        paras.append([lead.replace("{q}", q)] + facts[:n])
        spare.extend(facts[n:n + 1])
    paras[-1].append(rng.choice(c["closers"]))
    title = rng.choice(c["titles"])
    if rng.random() < 0.5:
        title += ", Issue %d" % rng.randint(3, 140)
    return dict(topic="science", title=title, paras=paras, spare=spare)


def doc_text(d):
    return render(d["title"], d["paras"])


SYNONYMS = [("small", "little"), ("quickly", "rapidly"), ("usually", "often"), ("begin", "start"),
            ("very", "really"), ("about", "around"), ("simple", "easy"), ("large", "big"), ("many", "lots of"),
            ("good", "fine"), ("slowly", "gradually"), ("because", "since"), ("every", "each"),
            ("worth", "well worth"), ("people", "folks"), ("quiet", "peaceful")]


def near_duplicate(rng, d):
    """Return a text that is a light edit of prose document d."""
    paras = [list(p) for p in d["paras"]]
    title = d["title"]
    orig = doc_text(d)
    ops = rng.sample(["swap", "swap", "drop", "add", "title"], rng.randint(1, 2))
    for op in ops:
        if op == "swap":
            for _ in range(rng.randint(1, 3)):
                pi = rng.randrange(len(paras))
                si = rng.randrange(len(paras[pi]))
                s = paras[pi][si]
                cands = [(a, b) for a, b in SYNONYMS if re.search(r"\b%s\b" % a, s)]
                if cands:
                    a, b = rng.choice(cands)
                    paras[pi][si] = re.sub(r"\b%s\b" % a, b, s, count=1)
        elif op == "drop":
            big = [i for i, p in enumerate(paras) if len(p) > 2]
            if big:
                pi = rng.choice(big)
                del paras[pi][rng.randrange(1, len(paras[pi]))]
        elif op == "add":
            extra = d["spare"][0] if d["spare"] else "Thanks for reading, and feel free to share this with a friend."
            pi = rng.randrange(len(paras))
            paras[pi].insert(rng.randint(0, len(paras[pi])), extra)
        elif op == "title":
            title = None if title else titlecase(" ".join(paras[0][0].split()[:6]).rstrip(",."))
    text = render(title, paras)
    surface = rng.choice(["none", "spaces", "blank", "trailing", "lower", "upper_title", "indent"])
    if surface == "spaces":
        text = text.replace(". ", ".  ")
    elif surface == "blank":
        text = text.replace("\n\n", "\n\n\n")
    elif surface == "trailing":
        text = "\n".join(line + "  " if line else line for line in text.split("\n")) + "\n"
    elif surface == "lower":
        text = text.lower()
    elif surface == "upper_title" and "\n" in text:
        first, rest = text.split("\n", 1)
        text = first.upper() + "\n" + rest
    elif surface == "indent":
        text = "\n\n".join("    " + p for p in text.split("\n\n"))
    if text == orig:
        text = text.replace(". ", ".  ", 1) if ". " in text else text + " "
    return text


NAV_ITEMS = ["About", "Blog", "Shop", "News", "Events", "FAQ", "Careers", "Contact", "Login", "Gallery", "Support"]
SITES = ["Example Widgets Ltd", "Northside Media Group", "The Example Gazette", "Greenleaf Home and Garden",
         "Pixel Forge Studio", "Example Travel Co", "Bluebird Outdoor Supply", "Example Hosting Inc"]


def make_boilerplate(rng, date):
    site = rng.choice(SITES)
    topic = rng.choice(list(TOPICS))
    t = TOPICS[topic]
    f = Filler(rng, t["slots"], t["anchors"])
    L = []
    if rng.random() < 0.7:
        L.append("Skip to main content")
    L.append(" | ".join(["Home"] + rng.sample(NAV_ITEMS, rng.randint(3, 6))))
    L += rng.choice([
        ["We use cookies to improve your experience on our site. By continuing to browse, you agree to our use of cookies.",
         "Accept all | Reject | Manage preferences"],
        ["This website uses cookies.", "OK", "Learn more"],
        ["Cookie settings", "We and our partners store and access information on your device.", "I agree", "Show details"],
        ["Please enable JavaScript in your browser to view this page correctly."],
    ])
    L += rng.sample(["Menu", "Search", "Search for:", "Cart (0)", "Sign in", "Toggle navigation", "EN | FR | DE"],
                    rng.randint(2, 4))
    title = titlecase(f.fill(rng.choice(t["titles"])))
    L.append(title)
    L.append("Posted on %s %d, %d by admin" % (MONTH_NAMES[date.month - 1], date.day, date.year))
    L.append(rng.choice(["0 comments", "3 comments", "Leave a comment", "5 min read"]))
    for b in rng.sample(t["body"], rng.randint(1, 2)):
        L.append(f.fill(b))
    if rng.random() < 0.2:
        L.append("Lorem ipsum dolor sit amet, consectetur adipiscing elit.")
    L.append(rng.choice(["Read more", "Continue reading", "Read more >>"]))
    L += ["Share this:", "Facebook", "Twitter", "Email", "Print"][: rng.randint(3, 5)]
    L.append("Related posts")
    for _ in range(rng.randint(2, 4)):
        L.append(titlecase(f.fill(rng.choice(t["titles"]))))
    L += rng.sample(["Leave a Reply", "Your email address will not be published.", "Required fields are marked *",
                     "Subscribe to our newsletter", "Enter your email", "Sign up", "Tags: news, tips, home",
                     "Categories", "Uncategorized", "Archives", "Recent Posts", "Follow us"], rng.randint(4, 8))
    L.append(rng.choice(["Privacy Policy | Terms of Use | Cookie Settings | Sitemap",
                         "Terms | Privacy | Accessibility | Contact Us", "Privacy | Imprint | Cookies"]))
    L.append("\u00a9 %d %s. All rights reserved." % (date.year, site))
    if rng.random() < 0.5:
        L.append(rng.choice(["Powered by ExamplePress", "Back to top", "Designed by Example Web Studio"]))
    return "\n".join(L), title


SPAM_KW = ["watches", "phone cases", "weight loss pills", "casino bonus", "car insurance", "crypto signals",
           "designer handbags", "diet tea", "gaming chairs", "vpn deals", "followers", "payday loans"]


def make_spam(rng):
    kw = rng.choice(SPAM_KW)
    kw2 = rng.choice([k for k in SPAM_KW if k != kw])
    slug = kw.replace(" ", "-")
    dom = rng.choice(["deals.example.net", "best-offers.example.com", "cheap.example.org", "win.example.net"])
    blocks = []

    def stuffing():
        pool = ["cheap %s", "best %s", "%s online", "buy %s", "discount %s", "%s sale", "%s deals", "top %s 2023",
                "%s near me", "free %s", "%s cheap", "%s free shipping"]
        return " ".join(rng.choice(pool) % kw for _ in range(rng.randint(25, 50)))

    def caps():
        opts = ["BUY NOW!!! %s AT 90%% OFF!!!" % kw.upper(), "LIMITED TIME OFFER!!! DON'T MISS OUT!!!",
                "CLICK HERE >>> https://%s/%s" % (dom, slug), "$$$ MAKE MONEY FAST $$$",
                "100% GUARANTEED!!! ACT NOW!!!", "BEST %s ON THE INTERNET!!!" % kw.upper(),
                "FREE GIFT WITH EVERY ORDER!!!", "HURRY!!! ONLY %d LEFT IN STOCK!!!" % rng.randint(2, 9),
                "WINNER WINNER!!! YOU HAVE BEEN SELECTED!!!", "NO PRESCRIPTION NEEDED!!! %s!!!" % kw2.upper()]
        return "\n".join(rng.sample(opts, rng.randint(4, 8)))

    def urls():
        return "\n".join("https://%s/%s?ref=%d&id=%d" % (rng.choice([dom, "www.example.net", "go.example.com"]),
                                                         rng.choice([slug, kw2.replace(" ", "-")]),
                                                         rng.randint(100, 999), rng.randint(1000, 99999))
                         for _ in range(rng.randint(5, 14)))

    def repeated():
        line = rng.choice(["Buy %s now and save big!" % kw, "Best %s best price best quality" % kw,
                           "%s %s %s" % (kw, kw, kw), "CLICK HERE FOR %s" % kw.upper()])
        return "\n".join([line] * rng.randint(6, 15))

    def seo():
        pool = ["%s near me", "best %s 2023", "%s reviews", "top 10 %s", "%s coupon code", "%s for cheap",
                "where to buy %s", "%s vs %s" % ("%s", kw2)]
        return " | ".join((rng.choice(pool) % kw) for _ in range(rng.randint(8, 16)))

    makers = [stuffing, caps, urls, repeated, seo]
    for m in rng.sample(makers, rng.randint(2, 4)):
        blocks.append(m())
    return "\n".join(blocks)


PII_NAMES = [("Jordan", "Ellis"), ("Maria", "Lopez"), ("Sam", "Whitaker"), ("Priya", "Raman"), ("Leo", "Fischer"),
             ("Nadia", "Haddad"), ("Chris", "Okoro"), ("Ana", "Silva"), ("Ben", "Carter"), ("Mei", "Tanaka")]


def pii_values(rng):
    first, last = rng.choice(PII_NAMES)
    email = rng.choice(["%s.%s@example.com" % (first.lower(), last.lower()), "%s%s@example.com" % (first[0].lower(), last.lower()),
                        "info@example.com", "support@example.com", "%s@example.com" % first.lower()])
    phone = rng.choice(["+1-555-01%02d", "+1-555-01%02d", "555-01%02d", "+1 555 01%02d", "(212) 555-01%02d",
                        "+1-312-555-01%02d"]) % rng.randint(0, 99)
    ip = rng.choice(["192.0.2.%d", "198.51.100.%d"]) % rng.randint(1, 254)
    ip2 = rng.choice(["192.0.2.%d", "198.51.100.%d"]) % rng.randint(1, 254)
    return dict(name="%s %s" % (first, last), first=first, email=email, phone=phone, ip=ip, ip2=ip2)


PII_SENTENCES = {
    "news": ["For questions about the meeting, email the organiser at {email} or call {phone}.",
             "Residents can contact {name} directly at {email} to register for the next session.",
             "The council office can be reached on {phone} during normal working hours."],
    "cooking": ["You can reach me at {email} if you would like a printable copy of the recipe.",
                "Cooking classes run on Saturdays, and bookings can be made by phone on {phone}."],
    "travel": ["The guesthouse owner, {name}, answers email at {email} and is happy to arrange airport pickups.",
               "For the walking tour, call {first} on {phone} the evening before."],
    "software": ["In my setup the test server is reachable at {ip}, and the backup job runs on {ip2}.",
                 "If the connection fails, check that {ip} is allowed through the firewall.",
                 "Bug reports can be sent to {email}, and please include the output of the failing command."],
}


CONTACT_LINES = ["If you have any questions about your order, please get in touch.",
                 "We are a small team, so please allow a day or two for a reply.",
                 "For group bookings, a phone call is usually quickest.",
                 "You can also visit us in person at the shop on the high street.",
                 "Please include your order number in any message.",
                 "Office hours are Monday to Friday, nine to five.",
                 "We aim to reply to every message within two working days.",
                 "Press enquiries should go to the same address."]
LOG_INTROS = ["Here is the relevant part of the server log from this morning.",
              "A few people asked what the attack looked like, so here is an excerpt from the log.",
              "This is what the authentication log showed before we changed the settings.",
              "The lines below are copied from the log of our small test machine."]
LOG_OUTROS = ["After blocking the first address the failed attempts stopped.",
              "We have since disabled password logins entirely.",
              "Nothing was compromised, but it was a useful reminder to keep the system updated.",
              "The second address belongs to our own backup job, so that one is expected."]


def make_pii(rng):
    topic = rng.choice(sorted(PII_SENTENCES))
    v = pii_values(rng)
    if rng.random() < 0.25:
        # a small structured page: a contact block or a server log excerpt
        if rng.random() < 0.5:
            lines = [rng.choice(["Contact us", "Get in touch", "Contact the team", "Questions and bookings"])]
            lines += rng.sample(CONTACT_LINES, rng.randint(2, 4))
            fields = [rng.choice(["Name: ", "Contact: ", ""]) + v["name"],
                      rng.choice(["Email: ", "E-mail: ", "Mail: "]) + v["email"],
                      rng.choice(["Phone: ", "Tel: ", "Mobile: "]) + v["phone"]]
            pos = rng.randint(1, len(lines))
            lines[pos:pos] = fields
        else:
            day = random_date(rng, (2022, 1, 1), (2024, 6, 30)).isoformat()
            lines = [rng.choice(LOG_INTROS)]
            secs = sorted(rng.sample(range(6 * 3600, 9 * 3600), rng.randint(3, 6)))
            for t in secs:
                user = rng.choice(["admin", "root", "deploy", "backup", "test", "www"])
                msg = rng.choice(["login failed for user %s from %s" % (user, v["ip"]),
                                  "accepted key for %s from %s port %d" % (user, v["ip2"], rng.randint(40000, 60000)),
                                  "connection closed by %s" % v["ip"], "invalid user %s from %s" % (user, v["ip"])])
                lines.append("%s %02d:%02d:%02d %s" % (day, t // 3600, t // 60 % 60, t % 60, msg))
            lines += rng.sample(LOG_OUTROS, rng.randint(1, 2))
            lines.append("If you see something similar, write to %s and we will take a look." % v["email"])
        return "\n".join(lines)
    d = make_prose(rng, topic)
    paras = [list(p) for p in d["paras"]]
    for s in rng.sample(PII_SENTENCES[topic], rng.randint(1, min(2, len(PII_SENTENCES[topic])))):
        s = SLOT_RE.sub(lambda m: v[m.group(1)], s)
        pi = rng.randrange(len(paras))
        paras[pi].insert(rng.randint(1, len(paras[pi])), s)
    return render(d["title"], paras)


def make_foreign(rng, lang):
    spec = FOREIGN[lang]
    f = Filler(rng, spec["slots"])
    rest = rng.sample(spec["rest"], rng.randint(3, 7))
    sents = [f.fill(spec["first"], cap=False)] + [f.fill(s, cap=False) for s in rest]
    sep = "" if lang in CJK else " "
    if len(sents) >= 5 and rng.random() < 0.6:
        cut = rng.randint(2, len(sents) - 2)
        return sep.join(sents[:cut]) + "\n\n" + sep.join(sents[cut:])
    return sep.join(sents)


SHORT_TEXTS = ["", " ", "\n", "\t\n  ", "   \n\n   ", "Loading...", "404 Not Found", "Page not found.", "Click here",
               "OK", "Thanks!", "test", "Coming soon.", "Redirecting...", "null", "Subscribe", "Access denied.",
               "Hello."]

# Sentences carrying characters that Unicode normalization (NFC/NFKC) or text
# cleaning changes; they are written to sit naturally in a cooking or travel post.
ODDITY_SENTENCES = {
    "decomposed": "Afterwards we sat in a little cafe\u0301 nearby, and the whole afternoon gave me a strange sense of de\u0301ja\u0300 vu.",
    "fullwidth": "The receipt from the market still says ＴＨＡＮＫ ＹＯＵ in wide letters, with the date printed as ２０２３.",
    "ligature": "I wrote the ﬁrst draft of this post in the ofﬁce, which is why it took so long to ﬁnish.",
    "nbsp": "On a good day the whole thing takes about 45\u00a0minutes from start to\u00a0finish.",
}


def add_zero_width(rng, text, n=3):
    words = [m for m in re.finditer(r"[A-Za-z]{7,}", text)]
    for m in sorted(rng.sample(words, min(n, len(words))), key=lambda m: -m.start()):
        cut = m.start() + len(m.group()) // 2
        text = text[:cut] + "\u200b" + text[cut:]
    return text


def add_controls(rng, text):
    stops = [m.end() for m in re.finditer(r"\. ", text)]
    for pos, ch in sorted(zip(rng.sample(stops, min(2, len(stops))), ["\u0007", "\u001b"]), reverse=True):
        text = text[:pos - 1] + ch + text[pos - 1:]
    return text


def make_normalization(rng, k):
    """k == 0 gets every oddity; the others two or three, so that each oddity shows up a few times."""
    d = make_prose(rng, rng.choice(["cooking", "travel"]))
    paras = [list(p) for p in d["paras"]]
    names = ["controls", "crlf", "decomposed", "fullwidth", "ligature", "nbsp", "zero_width"]
    picked = names if k == 0 else sorted({names[(2 * k) % 7], names[(2 * k + 1) % 7], rng.choice(names)})
    for n in picked:
        if n in ODDITY_SENTENCES:
            pi = rng.randrange(len(paras))
            paras[pi].insert(rng.randint(1, len(paras[pi])), ODDITY_SENTENCES[n])
    text = render(d["title"], paras)
    if "nbsp" in picked:
        text = text.replace(" and ", "\u00a0and ", 2)
    if "zero_width" in picked:
        text = add_zero_width(rng, text)
    if "controls" in picked:
        text = add_controls(rng, text)
    if "crlf" in picked:
        text = text.replace("\n", "\r\n")
    return text, picked


# ---------------------------------------------------------------------------
# The web set
# ---------------------------------------------------------------------------

WEB_COUNTS = [  # category, count, description
    ("prose", 330, "English prose"),
    ("exact_dup", 48, "exact duplicates of earlier docs"),
    ("near_dup", 48, "near duplicates of earlier docs"),
    ("boilerplate", 36, "boilerplate-heavy pages"),
    ("spam", 36, "spam-like pages"),
    ("pii", 30, "PII-like strings"),
    ("foreign", 48, "other languages and scripts"),
    ("short", 18, "very short, empty or whitespace-only"),
    ("normalization", 6, "characters that normalization changes"),
]
WEB_SHARD = 300

LANG_DOMAINS = {"fr": "fr.example.org", "de": "de.example.net", "es": "es.example.com", "ru": "ru.example.org",
                "zh": "zh.example.net", "ja": "ja.example.com", "ar": "ar.example.org", "hi": "hi.example.net",
                "el": "el.example.com"}


def make_url(rng, domain, slug, date):
    style = rng.randrange(3)
    if style == 0:
        return "https://%s/%d/%02d/%s" % (domain, date.year, date.month, slug)
    if style == 1:
        return "https://%s/posts/%s-%d" % (domain, slug, rng.randint(10, 9999))
    return "https://%s/p/%d" % (domain, rng.randint(1000, 999999))


def gen_web(rng):
    labels = [c for c, n, _ in WEB_COUNTS for _ in range(n)]
    rng.shuffle(labels)
    # duplicates need an earlier original: keep at least a few prose docs ahead of any of them
    for i in range(len(labels)):
        if labels[i] in ("exact_dup", "near_dup") and labels[:i].count("prose") < 5:
            j = labels.index("prose", i + 1)
            labels[i], labels[j] = labels[j], labels[i]
    topic_cycle = []
    langs = sorted(FOREIGN)
    lang_cycle = []
    records, prose_docs, dup_sources = [], [], []
    counts = {c: 0 for c, _, _ in WEB_COUNTS}
    detail = {"topics": {}, "langs": {}, "oddities": {}}
    norm_k = 0
    for i, cat in enumerate(labels):
        date = random_date(rng)
        url_domain, slug = "www.example.org", "page"
        if cat == "prose":
            if not topic_cycle:
                topic_cycle = sorted(list(TOPICS) + ["science"])
                rng.shuffle(topic_cycle)
            topic = topic_cycle.pop()
            d = make_prose(rng, topic)
            text = doc_text(d)
            prose_docs.append(d)
            dup_sources.append(text)
            detail["topics"][topic] = detail["topics"].get(topic, 0) + 1
            url_domain = rng.choice(TOPICS[topic]["domains"]) if topic in TOPICS else "science.example.org"
            slug = slugify(d["title"] or d["paras"][0][0])
        elif cat == "exact_dup":
            text = rng.choice(dup_sources)
            url_domain = rng.choice(["mirror.example.net", "archive.example.com", "www.example.org", "feed.example.net"])
            slug = slugify(text.split("\n")[0][:50])
        elif cat == "near_dup":
            d = rng.choice(prose_docs)
            text = near_duplicate(rng, d)
            url_domain = rng.choice(["copy.example.com", "www.example.net", "syndicate.example.org"])
            slug = slugify(d["title"] or d["paras"][0][0])
        elif cat == "boilerplate":
            text, title = make_boilerplate(rng, date)
            dup_sources.append(text)
            url_domain = rng.choice(["www.example.com", "shop.example.net", "portal.example.org"])
            slug = slugify(title)
        elif cat == "spam":
            text = make_spam(rng)
            url_domain = rng.choice(["deals.example.net", "best-offers.example.com", "www.example.net"])
            slug = slugify(text.split()[0] + "-" + str(rng.randint(1, 999)))
        elif cat == "pii":
            text = make_pii(rng)
            url_domain = rng.choice(["community.example.org", "blog.example.net", "www.example.com"])
            slug = slugify(text.split("\n")[0][:40])
        elif cat == "foreign":
            if not lang_cycle:
                lang_cycle = list(langs)
                rng.shuffle(lang_cycle)
            lang = lang_cycle.pop()
            text = make_foreign(rng, lang)
            detail["langs"][lang] = detail["langs"].get(lang, 0) + 1
            url_domain = LANG_DOMAINS[lang]
            slug = "%s-article-%d" % (lang, rng.randint(100, 9999))
        elif cat == "short":
            text = SHORT_TEXTS[counts["short"] % len(SHORT_TEXTS)]
            slug = "node-%d" % rng.randint(1, 99999)
        elif cat == "normalization":
            text, picked = make_normalization(rng, norm_k)
            norm_k += 1
            for p in picked:
                detail["oddities"][p] = detail["oddities"].get(p, 0) + 1
            url_domain = "www.example.net"
            slug = "notes-%d" % rng.randint(100, 9999)
        counts[cat] += 1
        rec = {"id": "web-%03d-%05d" % (i // WEB_SHARD, i % WEB_SHARD), "text": text,
               "url": make_url(rng, url_domain, slug, date), "date": date.isoformat()}
        r = rng.random()
        if r < 0.08:
            rec["meta"] = {"source": rng.choice(["crawl-a", "crawl-b", "partner-feed"]),
                           "score": round(rng.uniform(0.05, 0.99), 2)}
        elif r < 0.11:
            rec["meta"] = {"source": "crawl-b", "fetch": {"status": 200, "bytes": rng.randint(2000, 90000)},
                           "tags": sorted(rng.sample(["blog", "news", "forum", "shop", "wiki"], 2))}
        elif r < 0.13:
            rec["lang_hint"] = "und"
        records.append(rec)
    extra = sum(1 for r in records if len(r) > 4)
    return records, counts, detail, extra, labels


# ---------------------------------------------------------------------------
# The target set
# ---------------------------------------------------------------------------

T_INTROS = [
    "This short explainer covers {topic}.",
    "It is worth taking a few minutes to understand {topic}, because the idea shows up in many places.",
    "Here is a plain-language introduction to {topic}, with no prior knowledge assumed.",
    "The aim of this note is to explain {topic} clearly and without unnecessary jargon.",
    "This article is part of a series of short introductions to ideas from {field}, and this one covers {topic}.",
]
T_CLOSERS = [
    "The key point is that a simple underlying rule can explain a wide range of observations.",
    "Once the basic idea is clear, many related topics become much easier to follow.",
    "If you want to go further, try explaining the idea to someone else in your own words, which is the quickest way to find the gaps in your understanding.",
    "As with much of {field}, the details can become complicated, but the core principle is simple.",
    "Keeping this picture in mind will make later topics in {field} feel far more familiar.",
]
T_PAIR_INTROS = [
    "This explainer looks at two separate ideas from {field}: {a}, and {b}.",
    "Two ideas from {field} are covered here, {a} and {b}, each in a few short paragraphs.",
    "This note introduces {a} and then {b}, two topics that every student of {field} meets sooner or later.",
]
T_PAIR_BRIDGES = ["Now for the second idea.", "The second topic is quite different.", "Next, we turn to {b}.",
                  "With that in place, we can move on to {b}."]


def fill_plain(s, **kw):
    return SLOT_RE.sub(lambda m: kw[m.group(1)], s)


TARGET_PAIRS = set()  # (short a, short b) of the target set's two-idea documents


def pair_doc(rng, a, b):
    field = a[0]
    intro = fill_plain(rng.choice(T_PAIR_INTROS), field=field, a=a[3], b=b[3])
    bridge = fill_plain(rng.choice(T_PAIR_BRIDGES), b=b[3])
    bridge = bridge[0].upper() + bridge[1:]
    na, nb = rng.randint(4, 6), rng.randint(4, 6)
    closer = fill_plain(rng.choice(T_CLOSERS), field=field)
    title = "Two Ideas from %s: %s and %s" % (field.capitalize(), a[1], b[1])
    paras = [[intro] + a[5][:na], [bridge] + b[5][:nb], [closer]]
    return title, render(title, paras), field


def gen_heldout(rng, n=40):
    """Evaluation documents of the target's kind that the target set does not contain: two-idea
    explainers over subject pairs the target set does not use (call after gen_target)."""
    pairs = [(a, b) for i, a in enumerate(SUBJECTS) for b in SUBJECTS[i + 1:]
             if a[0] == b[0] and (a[1], b[1]) not in TARGET_PAIRS]
    rng.shuffle(pairs)
    records = []
    for i, (a, b) in enumerate(pairs[:n]):
        title, text, field = pair_doc(rng, a, b)
        date = random_date(rng, (2021, 1, 1), (2024, 6, 30))
        records.append({"id": "heldout-000-%05d" % i, "text": text,
                        "url": "https://eval.example.org/%s/%s" % (field, slugify(title)), "date": date.isoformat()})
    return records


def gen_target(rng):
    docs = []
    for field, short, title, topic, q, facts in SUBJECTS:
        intro = fill_plain(rng.choice(T_INTROS), topic=topic, field=field)
        closer = fill_plain(rng.choice(T_CLOSERS), field=field)
        sents = [intro] + list(facts)
        cut = rng.randint(3, 5)
        paras = [sents[:cut], sents[cut:] + [closer]]
        docs.append((title, render(title, paras), field))
    pairs = []
    for i, a in enumerate(SUBJECTS):
        for b in SUBJECTS[i + 1:]:
            if a[0] == b[0]:
                pairs.append((a, b))
    rng.shuffle(pairs)
    TARGET_PAIRS.update((a[1], b[1]) for a, b in pairs[:36])
    for a, b in pairs[:36]:
        field = a[0]
        intro = fill_plain(rng.choice(T_PAIR_INTROS), field=field, a=a[3], b=b[3])
        bridge = fill_plain(rng.choice(T_PAIR_BRIDGES), b=b[3])
        bridge = bridge[0].upper() + bridge[1:]
        na, nb = rng.randint(4, 6), rng.randint(4, 6)
        closer = fill_plain(rng.choice(T_CLOSERS), field=field)
        title = "Two Ideas from %s: %s and %s" % (field.capitalize(), a[1], b[1])
        paras = [[intro] + a[5][:na], [bridge] + b[5][:nb], [closer]]
        docs.append((title, render(title, paras), field))
    rng.shuffle(docs)
    records = []
    for i, (title, text, field) in enumerate(docs):
        date = random_date(rng, (2021, 1, 1), (2024, 6, 30))
        records.append({"id": "target-000-%05d" % i, "text": text,
                        "url": "https://learn.example.org/%s/%s" % (field, slugify(title)), "date": date.isoformat()})
    return records


# ---------------------------------------------------------------------------
# The archive set (book reviews and home repairs, not used in the web set)
# ---------------------------------------------------------------------------

ARCHIVE_TOPICS = {
    "reviews": dict(
        anchors=["book", "author", "genre"],
        slots=dict(book=["The Salt Road", "A Winter in Marlow", "Small Machines", "The Keeper's Daughter",
                         "Counting Rivers", "North of Everything", "The Glass Orchard", "Letters to Harbour Street"],
                   author=["Eleanor Vance", "Tomas Reid", "Amira Hassan", "Jonah Pell", "Clara Mendes", "Owen Marsh"],
                   genre=["mystery", "historical novel", "family saga", "literary novel", "short novel"]),
        openers=["{book} is a {genre} by {author}, and it is one of the best things I have read this year.",
                 "I picked up {book}, a {genre} by {author}, almost by accident, and I am very glad I did.",
                 "{author} is not yet a well-known name, but {book} deserves a wide audience."],
        body=["The story follows a young woman who returns to her home town after twenty years away.",
              "The prose is clear and unhurried, and the dialogue feels natural.",
              "The first hundred pages are slow, but the patience is rewarded.",
              "{author} has a gift for small details that make a place feel real.",
              "Some of the minor characters are thinly drawn, which is my only real complaint.",
              "The ending is quiet rather than dramatic, and it suits the book well.",
              "I read most of it in a single weekend, which says a lot.",
              "Readers who enjoy character-driven stories will find plenty to like here.",
              "The central mystery is resolved neatly, without relying on coincidence.",
              "It would make a good choice for a book club, since it raises questions without answering all of them.",
              "The setting, a fading seaside town, is almost a character in its own right.",
              "At times the book tries to do too much, with one subplot too many.",
              "I found myself thinking about the main character for days after finishing."],
        closers=["Recommended, especially for a long train journey.",
                 "Three and a half stars from me, and I will certainly read whatever {author} writes next.",
                 "It is not perfect, but it is honest, and that counts for a great deal."]),
    "repairs": dict(
        anchors=["fixture", "tool"],
        slots=dict(fixture=["a dripping tap", "a squeaky door", "a running toilet", "a sticking drawer",
                            "a cracked tile", "a loose stair rail", "a wobbly chair"],
                   tool=["an adjustable spanner", "a set of screwdrivers", "a putty knife", "a small level",
                         "a cordless drill"]),
        openers=["Fixing {fixture} is one of the easiest home repairs, and it can save you the cost of calling someone out.",
                 "Last month I finally dealt with {fixture}, and it took far less time than I had feared.",
                 "Most people put up with {fixture} for months, but the repair is usually simple."],
        body=["Before you start, turn off the water or power supply if the job involves either.",
              "You will need {tool}, a clean cloth, and about half an hour.",
              "Take a photo before you take anything apart, so you can remember how it goes back together.",
              "Lay the parts out in order on a towel so that nothing small rolls away.",
              "Most hardware shops sell replacement parts for a few dollars.",
              "Bring the old part with you to the shop so you can match it exactly.",
              "Do not overtighten screws, since that can crack the fitting or strip the thread.",
              "If something does not move easily, stop and look again rather than forcing it.",
              "A little silicone grease on moving parts will make them last longer.",
              "Once everything is back in place, test it a few times before putting the tools away.",
              "Keep a small notebook of repairs, with dates and the parts you used.",
              "If the problem comes back within a few weeks, the underlying cause may be elsewhere.",
              "There is no shame in calling a professional when a job involves gas or major wiring."],
        closers=["Small repairs like this build confidence, and each one makes the next a little easier.",
                 "With the right tool and a little patience, most people can handle this job in an afternoon."]),
}

ARCHIVE_NOTE = """A note about the reading room

The reading room on the second floor of the old library is my favourite place in town to work. It is quiet without being silent, and the long wooden tables are wide enough to spread out books and papers. On winter afternoons the radiators tick gently and the light through the tall windows turns gold around four o'clock.

Most of the regulars are students, retired people working on family histories, and a few writers who seem to have claimed particular seats. Nobody talks much, but there is a friendly sense of shared purpose. When the librarian rings the small bell at closing time, everyone packs up slowly, as if reluctant to leave.

Public libraries offer something that is increasingly hard to find: a warm, calm place where nobody expects you to buy anything. That alone makes them worth protecting.
"""


def gen_archive_docs(rng, key, prefix, n):
    t = ARCHIVE_TOPICS[key]
    records = []
    for i in range(n):
        f = Filler(rng, t["slots"], t["anchors"])
        body = rng.sample(t["body"], rng.randint(4, 8))
        sents = [f.fill(rng.choice(t["openers"]))] + [f.fill(b) for b in body] + [f.fill(rng.choice(t["closers"]))]
        date = random_date(rng, (2020, 1, 1), (2023, 12, 31))
        text = render(None, to_paragraphs(rng, sents, 2, 4))
        records.append({"id": "%s-%05d" % (prefix, i), "text": text,
                        "url": "https://%s.example.com/%s/%d" % (key, slugify(sents[0][:40]), i), "date": date.isoformat()})
    return records


def build_tar(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(members):
            data = members[name]
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mtime = 0
            ti.mode = 0o644
            ti.uid = ti.gid = 0
            ti.uname = ti.gname = ""
            ti.type = tarfile.REGTYPE
            tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


# ---------------------------------------------------------------------------
# Plain-text notes
# ---------------------------------------------------------------------------

NOTES = {
    "notes-bread.txt": """Notes on baking bread at home

I started baking bread during a long, wet winter when I had more evenings free than I knew what to do with. The first loaves were dense and pale, and one of them was so heavy that it became a running joke in the house. These notes are a record of what changed between those early bricks and the bread I make now.

The single most useful change was weighing everything. Cups and spoons are fine for cakes, but flour settles and packs in unpredictable ways, and a difference of twenty or thirty grams makes a real difference to the dough. A cheap kitchen scale solved a problem that I had been blaming on the yeast for weeks.

The second change was patience. Dough rises more slowly in a cool kitchen, and recipes that say one hour often mean one hour in a warm room. I now judge the first rise by looking at the dough rather than the clock. When it has roughly doubled and a floured finger leaves a dent that springs back slowly, it is ready.

Shaping took the longest to learn. The aim is to create a tight outer skin that holds the loaf together while it rises a second time. I watched other people do it, practised on dough that I did not mind ruining, and slowly developed a feel for it. There is no shortcut here, only repetition.

Baking in a covered pot was the final improvement. The lid traps steam during the first part of the bake, which keeps the crust soft long enough for the loaf to expand. After twenty minutes the lid comes off and the crust can brown. The difference in height and colour surprised me the first time I tried it.

A few smaller lessons are worth writing down. Salt slows yeast, so it should not be piled directly on top of it. A little wholemeal flour adds flavour without making the loaf heavy. Bread should cool completely before it is cut, even though nobody in my house has ever managed to wait that long.

I still have bad days. Sometimes the loaf spreads instead of rising, or the bottom burns because I forgot to move the shelf. But most weeks the bread is good, and the process has become a quiet part of the weekend that I look forward to.
""",
    "notes-birds.txt": """Notes from the kitchen window

For the past year I have kept a simple list of the birds that visit the small garden behind our flat. I am not an expert, and I still have to check a field guide for anything unusual, but the habit has changed how I notice the seasons.

The feeder went up in January, mostly as an experiment. For the first week nothing came at all, and I assumed I had put it in the wrong place. Then a pair of blue tits discovered it, and within a month there were regular visits from sparrows, a robin, and a family of noisy starlings.

Each species has its own manners. The robin prefers to feed on the ground beneath the feeder, picking up whatever the others drop. The sparrows arrive in groups and argue constantly. A single blackbird turns up every evening just before dusk, and it is so regular that I have started to set my tea by it.

Spring brought the most change. The songs grew louder and more varied in March, and by April the birds were carrying nesting material across the garden. I saw a wren for the first time, a tiny brown bird with a song far louder than its size would suggest.

Summer was quieter at the feeder, since there was plenty of natural food around. I learned that this is normal and not a sign that something was wrong. The birds returned in larger numbers in the autumn, when the young of the year joined the adults.

Keeping the list has taught me a few practical things. Feeders need regular cleaning to stop disease spreading. Fresh water matters as much as food, especially in hot or freezing weather. And a cat sitting on the neighbour's fence will empty the garden faster than anything else.

Most of all, the list has given me a reason to pause for a few minutes each morning. It is a small habit, but it has made me feel more connected to the place where I live.
""",
    "notes-bicycle.txt": """Notes on restoring an old bicycle

Last spring a friend gave me an old steel bicycle that had spent about ten years in a garden shed. The tyres were flat, the chain was orange with rust, and the brakes barely worked. I decided to restore it myself, partly to save money and partly because I wanted to understand how a bicycle actually works.

The first step was simply cleaning it. Years of dust and grease came off with warm soapy water and an old toothbrush, and underneath the frame was in far better condition than I had feared. Only a few small patches of rust needed attention, and a little fine steel wool took care of them.

The chain was beyond saving, so I replaced it along with the rear sprockets. A new chain on worn gears often slips, and replacing both at once avoided that problem. This was the most expensive part of the project, but it made the biggest difference to how the bicycle felt.

Brakes came next. The cables had stretched and the pads had hardened with age. New pads and cables cost very little, and fitting them taught me how the whole system fits together. It took three attempts to get the pads aligned properly with the rims, but the result was a bicycle that actually stopped when I asked it to.

The wheels needed new tubes and tyres, and one of them was slightly buckled. Truing a wheel is a slow job that involves tightening and loosening spokes a quarter turn at a time. I borrowed a stand from a local repair cafe and spent a happy evening learning how to do it.

By the end, the total cost was a fraction of the price of a new bicycle. More importantly, I now know how to maintain it myself. When something squeaks or rattles, I have a good idea of where to look.

If you have an old bicycle sitting unused, it is worth taking a closer look. Most of the parts that wear out are cheap and easy to replace, and the satisfaction of riding something you have brought back to life is hard to beat.
""",
}

# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "samples"))
    args = ap.parse_args()
    out = os.path.normpath(args.out)

    web, counts, detail, extra, _ = gen_web(random.Random(20240501))
    for shard in range((len(web) + WEB_SHARD - 1) // WEB_SHARD):
        part = web[shard * WEB_SHARD:(shard + 1) * WEB_SHARD]
        write_bytes(os.path.join(out, "web", "web-%03d.jsonl.zst" % shard), compress(jsonl(part), "zstd"))

    target = gen_target(random.Random(20240502))
    write_bytes(os.path.join(out, "target", "target-000.jsonl.zst"), compress(jsonl(target), "zstd"))

    heldout = gen_heldout(random.Random(20240504))
    write_bytes(os.path.join(out, "heldout", "heldout-000.jsonl.zst"), compress(jsonl(heldout), "zstd"))

    arng = random.Random(20240503)
    docs_a = gen_archive_docs(arng, "reviews", "arc-a", 20)
    docs_b = gen_archive_docs(arng, "repairs", "arc-b", 20)
    tar = build_tar({"docs-a.jsonl": jsonl(docs_a), "docs-b.jsonl": jsonl(docs_b),
                     "notes.txt": ARCHIVE_NOTE.encode("utf-8")})
    write_bytes(os.path.join(out, "archive", "bundle.tar.gz"), compress(tar, "gzip"))

    for name in sorted(NOTES):
        write_bytes(os.path.join(out, "text", name), NOTES[name].encode("utf-8"))

    print("web: %d documents in %d shards" % (len(web), (len(web) + WEB_SHARD - 1) // WEB_SHARD))
    for cat, _, desc in WEB_COUNTS:
        print("  %-14s %4d  %s" % (cat, counts[cat], desc))
    print("  prose topics:  " + ", ".join("%s %d" % kv for kv in sorted(detail["topics"].items())))
    print("  languages:     " + ", ".join("%s %d" % kv for kv in sorted(detail["langs"].items())))
    print("  oddities:      " + ", ".join("%s %d" % kv for kv in sorted(detail["oddities"].items())))
    print("  records with extra metadata fields: %d" % extra)
    print("target: %d documents" % len(target))
    print("heldout: %d documents (evaluation only: never for scoring)" % len(heldout))
    print("archive: docs-a.jsonl %d, docs-b.jsonl %d, notes.txt 1" % (len(docs_a), len(docs_b)))
    print("text: " + ", ".join(sorted(NOTES)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
