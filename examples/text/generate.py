#!/usr/bin/env python3
"""Generates news-or-blog.jsonl: short English and Chinese texts labelled `news` or `blog`.

Both classes write about the same topics (technology, economy, sport, travel, food, city life,
weather, health), so the topic words alone do not tell them apart; the style does: news reports
in the third person with sources, officials, places and figures, blogs speak in the first person
with opinions and advice. To keep the task from being trivial, some news quote a person in the
first person, some blogs cite a report or give figures, and some records of both classes are a
single neutral sentence about the topic.

Standard library only, fixed seed: running it again writes the same file.
    python3 examples/text/generate.py > examples/text/news-or-blog.jsonl
"""
import json
import random
import sys

SEED = 20240611
RECORDS = 3000

TOPICS_EN = {
    "technology": {
        "things": ["a new smartphone", "an open-source database", "a chip factory", "a cloud service",
                   "an electric scooter", "a language model", "a home robot", "a battery design",
                   "a video game", "a satellite network"],
        "words": ["software", "devices", "data", "users", "engineers", "startups", "servers", "apps"],
    },
    "economy": {
        "things": ["the housing market", "interest rates", "a regional bank", "fuel prices",
                   "the stock market", "small businesses", "a trade agreement", "the minimum wage",
                   "grocery prices", "the job market"],
        "words": ["prices", "inflation", "investors", "wages", "exports", "budgets", "loans", "growth"],
    },
    "sport": {
        "things": ["the city marathon", "the national football team", "a tennis final",
                   "the basketball season", "a cycling race", "the swimming championship",
                   "a local rugby club", "the winter games", "a chess tournament", "a boxing match"],
        "words": ["players", "fans", "coaches", "goals", "training", "tickets", "records", "medals"],
    },
    "travel": {
        "things": ["a night train to the coast", "a mountain village", "the new airport terminal",
                   "a ferry route", "an island resort", "a hiking trail", "a budget airline",
                   "a museum pass", "a cheap hostel", "a road trip through the desert"],
        "words": ["tourists", "flights", "hotels", "visitors", "luggage", "routes", "beaches", "passports"],
    },
    "food": {
        "things": ["a ramen shop", "a farmers market", "a vegan bakery", "street food",
                   "a coffee roaster", "a cooking class", "a family restaurant", "sourdough bread",
                   "a food festival", "a dumpling recipe"],
        "words": ["recipes", "chefs", "flavours", "menus", "ingredients", "kitchens", "dishes", "snacks"],
    },
    "city": {
        "things": ["a new bike lane", "the subway extension", "a public library", "a park renovation",
                   "night buses", "a recycling programme", "rent control", "a noisy construction site",
                   "a community garden", "the old harbour district"],
        "words": ["residents", "neighbours", "streets", "traffic", "councils", "buildings", "parks", "commuters"],
    },
    "weather": {
        "things": ["a heat wave", "a heavy storm", "early snow", "a dry summer", "spring floods",
                   "thick fog", "a cold front", "record rainfall", "strong winds", "a mild winter"],
        "words": ["temperatures", "forecasts", "rain", "clouds", "roads", "farmers", "rivers", "warnings"],
    },
    "health": {
        "things": ["a flu vaccine", "a running habit", "a new clinic", "sleep routines",
                   "a meditation app", "hospital waiting times", "a sugar tax", "vitamin pills",
                   "a yoga studio", "air quality"],
        "words": ["doctors", "patients", "nurses", "symptoms", "exercise", "diets", "studies", "hospitals"],
    },
}

NEWS_EN = [
    "Officials announced on {day} that {thing} will be expanded next year, according to a statement released by the {body}.",
    "{thing_cap} drew {number} {word} last week, the {body} said in a report published on {day}.",
    "The {body} confirmed on {day} that {thing} had been delayed, citing rising costs and a shortage of {word}.",
    "According to figures released by the {body}, {thing} grew by {percent} percent in the {quarter} quarter.",
    "{person}, a spokesperson for the {body}, told reporters that {thing} would reopen on {day}.",
    "Authorities in {place} said {thing} affected about {number} {word} and that an inquiry is under way.",
    "The {body} reported on {day} that demand for {thing} rose sharply, while {word} remained under pressure.",
    "Lawmakers in {place} voted on {day} to approve new funding for {thing}, the {body} said.",
    "{thing_cap} will be reviewed by the {body} after complaints from {word}, officials in {place} said on {day}.",
    "Analysts expect {thing} to attract {number} {word} this year, the {body} said in its annual review.",
    "Police in {place} said on {day} that {thing} had been closed temporarily while investigators examined the site.",
    "The {body} said {thing} was part of a {number} million dollar plan announced earlier this month.",
]
NEWS_QUOTE_EN = [
    "\"We expect {thing} to be ready by {day},\" {person} of the {body} said at a press conference.",
    "\"I have never seen so many {word} at once,\" said {person}, who has worked for the {body} for {small} years.",
    "\"We are proud of what our {word} achieved,\" {person} told the {body} in {place} on {day}.",
]
BLOG_EN = [
    "I finally tried {thing} this weekend and honestly, I was not ready for how good it was.",
    "Quick tip from me: if you are thinking about {thing}, book early and bring snacks!",
    "So my friends keep asking what I think about {thing}. Here are my totally unscientific thoughts.",
    "Confession: I used to hate {thing}, but after a month of trying it my mind has changed.",
    "We spent the whole day on {thing} and my feet still hurt, but I would do it again tomorrow.",
    "My top three lessons from {thing}: start small, ask the {word}, and do not panic.",
    "Is it just me or is everyone suddenly talking about {thing}? I have some feelings about it.",
    "Today I want to share my little routine around {thing}, because it really works for me.",
    "Okay, rant time. {thing_cap} was a disaster for us and I am still a bit annoyed.",
    "I put together a list of my favourite {word} after a year of writing about {thing}. Enjoy!",
    "Honestly the best part of my week was {thing}. Would love to hear your stories in the comments.",
    "A reader asked me about {thing}, so here is my honest review after trying it twice.",
]
BLOG_FACT_EN = [
    "I read a report saying {thing} grew by {percent} percent, which surprised me a lot.",
    "Apparently the {body} counted {number} {word} last year. I believe it, it felt crowded!",
    "According to the {body}, {thing} is getting more popular, and I can see why.",
]
NEUTRAL_EN = [
    "{thing_cap} and {word}.",
    "Some thoughts on {thing} and the {word} around it.",
    "{thing_cap}: what is changing for {word}.",
    "More about {thing} this week.",
]

TOPICS_ZH = {
    "科技": {"things": ["新款手机", "开源数据库", "芯片工厂", "云服务", "电动滑板车", "大语言模型",
                      "家用机器人", "新型电池", "电子游戏", "卫星网络"],
             "words": ["软件", "设备", "数据", "用户", "工程师", "创业公司", "服务器", "应用"]},
    "经济": {"things": ["房地产市场", "贷款利率", "地方银行", "油价", "股市", "小微企业", "贸易协定",
                      "最低工资", "菜价", "就业市场"],
             "words": ["价格", "通胀", "投资者", "工资", "出口", "预算", "贷款", "增长"]},
    "体育": {"things": ["城市马拉松", "国家足球队", "网球决赛", "篮球联赛", "自行车赛", "游泳锦标赛",
                      "业余橄榄球俱乐部", "冬季运动会", "象棋比赛", "拳击赛"],
             "words": ["球员", "球迷", "教练", "进球", "训练", "门票", "纪录", "奖牌"]},
    "旅行": {"things": ["去海边的夜车", "山村", "新航站楼", "轮渡航线", "海岛度假村", "徒步路线",
                      "廉价航空", "博物馆通票", "青年旅舍", "沙漠自驾"],
             "words": ["游客", "航班", "酒店", "景点", "行李", "路线", "海滩", "护照"]},
    "美食": {"things": ["拉面店", "农贸市场", "素食面包店", "街头小吃", "咖啡烘焙坊", "烹饪课",
                      "家常菜馆", "酸面包", "美食节", "饺子做法"],
             "words": ["菜谱", "厨师", "口味", "菜单", "食材", "厨房", "菜品", "零食"]},
    "城市": {"things": ["新自行车道", "地铁延长线", "公共图书馆", "公园改造", "夜班公交", "垃圾分类",
                      "租金管控", "施工工地", "社区菜园", "老港区"],
             "words": ["居民", "邻居", "街道", "交通", "社区", "楼房", "公园", "通勤族"]},
    "天气": {"things": ["高温天气", "强暴雨", "初雪", "干旱", "春季洪水", "大雾", "冷空气", "强降雨",
                      "大风", "暖冬"],
             "words": ["气温", "预报", "降雨", "云层", "道路", "农民", "河流", "预警"]},
    "健康": {"things": ["流感疫苗", "跑步习惯", "新诊所", "作息规律", "冥想软件", "医院排队",
                      "糖税", "维生素片", "瑜伽馆", "空气质量"],
             "words": ["医生", "患者", "护士", "症状", "锻炼", "饮食", "研究", "医院"]},
}

NEWS_ZH = [
    "据{body}消息，{thing}将于明年扩建，相关部门已于{day}发布通知。",
    "记者{day}从{body}获悉，{thing}上周吸引了{number}名{word}。",
    "{body}{day}表示，受成本上升影响，{thing}项目将推迟实施。",
    "{body}发布的数据显示，{thing}第{quarter_zh}季度同比增长{percent}%。",
    "{body}新闻发言人{person_zh}在{day}的发布会上介绍，{thing}将重新开放。",
    "{place_zh}有关部门称，{thing}影响了约{number}名{word}，调查工作正在进行中。",
    "本报讯 {place_zh}{day}召开会议，审议通过了关于{thing}的专项资金方案。",
    "新华社{place_zh}{day}电 {thing}近日引发{word}广泛关注，{body}已介入调查。",
    "{body}预计，今年{thing}将吸引{number}名{word}，较去年明显增加。",
    "{place_zh}警方{day}通报，{thing}已临时关闭，相关情况正在进一步核实。",
    "据悉，{thing}是{body}本月初公布的{number}亿元计划的一部分。",
    "{body}{day}发布公告称，{thing}相关规定将于下月起正式施行。",
]
NEWS_QUOTE_ZH = [
    "“我们预计{thing}将在{day}前完成。”{body}负责人{person_zh}在发布会上说。",
    "“我从来没见过这么多{word}。”在{body}工作了{small}年的{person_zh}对记者表示。",
]
BLOG_ZH = [
    "这个周末终于去体验了{thing}，说实话真的超出我的预期！",
    "给大家一个小建议：如果你也想去{thing}，一定要提前预约，记得带点零食哈哈。",
    "朋友们老问我怎么看{thing}，今天就随便聊聊我的真实感受吧。",
    "坦白说，我以前挺讨厌{thing}的，坚持了一个月之后彻底改观了。",
    "我们在{thing}待了一整天，脚到现在还疼，但下次我还想去。",
    "关于{thing}，我总结了三点心得：慢慢来，多问{word}，别着急。",
    "是不是只有我觉得最近大家都在聊{thing}？我有点想法想分享一下。",
    "今天想分享一下我自己关于{thing}的小习惯，对我来说真的很有用。",
    "吐槽时间到！{thing}这次真的让我们很失望，我到现在还有点生气。",
    "写了一年关于{thing}的笔记，整理了我最喜欢的几个{word}，推荐给你们～",
    "这周最开心的事就是{thing}了，欢迎在评论区告诉我你们的故事。",
    "有读者私信问我{thing}怎么样，这是我体验两次之后的真实评价。",
]
BLOG_FACT_ZH = [
    "我看到一篇报道说{thing}增长了{percent}%，还挺意外的。",
    "听说{body}统计去年有{number}名{word}，我信，当时真的人挤人！",
]
NEUTRAL_ZH = [
    "{thing}和{word}。",
    "关于{thing}的一些事。",
    "{thing}：{word}的新变化。",
    "本周继续聊聊{thing}。",
]

BODIES_EN = ["city council", "ministry of transport", "national statistics office", "central bank",
             "health department", "tourism board", "sports federation", "weather service",
             "chamber of commerce", "university research centre"]
BODIES_ZH = ["市政府", "交通运输部", "国家统计局", "人民银行", "卫生健康委", "文旅局", "体育总局",
             "气象台", "商务局", "大学研究中心"]
PLACES_EN = ["Lyon", "Osaka", "Toronto", "Nairobi", "Lisbon", "Melbourne", "Denver", "Krakow",
             "Seville", "Busan"]
PLACES_ZH = ["北京", "上海", "广州", "成都", "杭州", "武汉", "西安", "南京", "重庆", "厦门"]
PEOPLE_EN = ["Maria Lopez", "James Chen", "Amina Diallo", "Tom Becker", "Priya Nair", "Lucas Moreau",
             "Sara Lindqvist", "Kenji Sato"]
PEOPLE_ZH = ["王磊", "李娜", "张伟", "陈静", "刘洋", "赵敏", "孙浩", "周婷"]
DAYS_EN = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday",
           "March 3", "June 18", "October 9"]
DAYS_ZH = ["周一", "周二", "周三", "周四", "周五", "3日", "18日", "9日", "今天", "昨天"]
QUARTERS = ["first", "second", "third", "fourth"]
QUARTERS_ZH = ["一", "二", "三", "四"]
OPENERS = {
    ("news", False): ["", "", "", "", "Update: ", "Breaking: "],
    ("blog", False): ["", "", "", "", "Hey everyone! ", "Update: "],
    ("news", True): ["", "", "", "", "更新：", "快讯："],
    ("blog", True): ["", "", "", "", "大家好！", "更新："],
}


def fill(template, topic, rng, zh):
    thing = rng.choice(topic["things"])
    values = {
        "thing": thing,
        "thing_cap": thing[:1].upper() + thing[1:],
        "word": rng.choice(topic["words"]),
        "body": rng.choice(BODIES_ZH if zh else BODIES_EN),
        "place": rng.choice(PLACES_EN),
        "place_zh": rng.choice(PLACES_ZH),
        "person": rng.choice(PEOPLE_EN),
        "person_zh": rng.choice(PEOPLE_ZH),
        "day": rng.choice(DAYS_ZH if zh else DAYS_EN),
        "number": rng.choice([120, 450, 1200, 3000, 8500, 20000, 75000]),
        "small": rng.randint(2, 30),
        "percent": rng.choice([2, 3.5, 5, 7.2, 12, 18, 25]),
        "quarter": rng.choice(QUARTERS),
        "quarter_zh": rng.choice(QUARTERS_ZH),
    }
    return template.format(**values)


def record(rng, zh, label):
    topics = TOPICS_ZH if zh else TOPICS_EN
    topic = topics[rng.choice(sorted(topics))]
    if zh:
        main, mixed, neutral = (NEWS_ZH, NEWS_QUOTE_ZH, NEUTRAL_ZH) if label == "news" else (BLOG_ZH, BLOG_FACT_ZH, NEUTRAL_ZH)
    else:
        main, mixed, neutral = (NEWS_EN, NEWS_QUOTE_EN, NEUTRAL_EN) if label == "news" else (BLOG_EN, BLOG_FACT_EN, NEUTRAL_EN)
    roll = rng.random()
    if roll < 0.08:
        # A headline-like fragment with no style at all: either class, impossible to tell.
        sentences = [fill(rng.choice(neutral), topic, rng, zh)]
    elif roll < 0.28:
        # The other class's habit (a quote in news, a figure in a blog) next to the own style.
        sentences = [fill(rng.choice(mixed), topic, rng, zh), fill(rng.choice(main), topic, rng, zh)]
        rng.shuffle(sentences)
    else:
        sentences = [fill(rng.choice(main), topic, rng, zh) for _ in range(rng.choice([1, 1, 2]))]
    opener = rng.choice(OPENERS[(label, zh)])
    return opener + ("" if zh else " ").join(sentences).strip()


def main():
    rng = random.Random(SEED)
    out = sys.stdout
    for index in range(RECORDS):
        zh = rng.random() < 0.5
        label = "news" if rng.random() < 0.5 else "blog"
        text = record(rng, zh, label)
        line = {"id": index + 1, "lang": "zh" if zh else "en", "text": text, "label": label}
        out.write(json.dumps(line, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
